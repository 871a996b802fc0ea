//! The audit's rules as pure functions, one module per family (nodes, files,
//! workloads, credentials, images) behind one table, [`RULES`]: a rule is a
//! name and a judge of one kind of input — the nodes, the files under
//! `manifests/`, or the namespace's live objects. Files and live objects are
//! both read as [`Manifest`]s, so one rule can judge both and is tested on YAML.
//! A new rule is a function and a row.

mod credentials;
mod files;
mod images;
mod nodes;
mod workloads;

use serde_json::Value;

use super::{Check, Section};
use crate::config::RegistryConfig;
use crate::deploy::manifest::Manifest;
use crate::nodes::NodeSummary;
use crate::stack::Component;

pub use images::images_in;

pub const NODES: &str = "at least two Ready nodes: a control plane and an agent";
pub const ONE_FILE: &str = "one manifest file per component";
pub const NO_CREDENTIALS_IN_FILES: &str = "no credential outside Secret manifests";

pub const KINDS: &str = "StatefulSets for the databases, rabbitmq and billing-app; Deployments for inventory-app and api-gateway";
pub const VOLUMES: &str = "databases and queue keep their data on volume claims";
pub const AUTOSCALERS: &str = "autoscalers: 1 to 3 replicas at 60% CPU";
pub const PORTS: &str =
    "ports 5432, 5432, 5672, 8080, 8080, 3000; the gateway behind a LoadBalancer";
pub const CREDENTIALS: &str = "credentials come from Secrets, and the Secrets hold them all";
pub const IMAGES: &str = "images from the registry namespace";

/// One rule of the audit.
pub struct Rule {
    pub name: &'static str,
    judge: Judge,
}

/// What a rule reads, and how it judges it.
enum Judge {
    Nodes(fn(&[NodeSummary]) -> Verdict),
    Files(fn(&Files) -> Verdict),
    Objects(fn(&Live) -> Verdict),
}

/// Every rule, in the order the checklist shows them.
pub const RULES: [Rule; 9] = [
    Rule {
        name: NODES,
        judge: Judge::Nodes(nodes::ready_master_and_agent),
    },
    Rule {
        name: ONE_FILE,
        judge: Judge::Files(files::one_file_per_component),
    },
    Rule {
        name: NO_CREDENTIALS_IN_FILES,
        judge: Judge::Files(credentials::credentials_in_files),
    },
    Rule {
        name: KINDS,
        judge: Judge::Objects(workloads::kinds),
    },
    Rule {
        name: VOLUMES,
        judge: Judge::Objects(workloads::volumes),
    },
    Rule {
        name: AUTOSCALERS,
        judge: Judge::Objects(workloads::autoscalers),
    },
    Rule {
        name: PORTS,
        judge: Judge::Objects(workloads::ports),
    },
    Rule {
        name: CREDENTIALS,
        judge: Judge::Objects(credentials::live_credentials),
    },
    Rule {
        name: IMAGES,
        judge: Judge::Objects(images::from_registry),
    },
];

impl Rule {
    pub fn section(&self) -> Section {
        match self.judge {
            Judge::Nodes(_) => Section::Cluster,
            Judge::Files(_) => Section::Manifests,
            Judge::Objects(_) => Section::Objects,
        }
    }
}

/// A rule's finding, which the table turns into a [`Check`] under the rule's name.
pub enum Verdict {
    /// Passed without problems; else failed with them, and the hint.
    Judged {
        evidence: Vec<String>,
        problems: Vec<String>,
        hint: String,
    },
    /// Could not be judged, and why.
    Skipped(String),
}

impl Verdict {
    fn judged(evidence: Vec<String>, problems: Vec<String>, hint: &str) -> Verdict {
        Verdict::Judged {
            evidence,
            problems,
            hint: hint.to_string(),
        }
    }

    fn check(self, rule: &Rule) -> Check {
        match self {
            Verdict::Judged {
                evidence,
                problems,
                hint,
            } => Check::judged(rule.section(), rule.name, evidence, problems, &hint),
            Verdict::Skipped(why) => Check::skipped(rule.section(), rule.name, &why),
        }
    }
}

/// The manifest files and their directory, as the files' rules read them.
pub struct Files<'a> {
    pub manifests: &'a [Manifest],
    pub dir: &'a str,
}

/// The namespace's live objects, as the objects' rules read them.
pub struct Live<'a> {
    pub objects: &'a [Manifest],
    pub namespace: &'a str,
    pub registry: &'a RegistryConfig,
}

impl Live<'_> {
    /// What to do about a wrong workload, Service or autoscaler.
    fn fix(&self) -> String {
        format!(
            "fix the manifest and run `orchestrator deploy`; `kubectl -n {} get deploy,sts,hpa,svc` shows what runs",
            self.namespace
        )
    }
}

/// The names of the rules of `section`, e.g. to skip them all.
pub fn names(section: Section) -> Vec<&'static str> {
    RULES
        .iter()
        .filter(|rule| rule.section() == section)
        .map(|rule| rule.name)
        .collect()
}

/// The checks of the cluster's nodes.
pub fn cluster(nodes: &[NodeSummary]) -> Vec<Check> {
    judge(|judge| match judge {
        Judge::Nodes(rule) => Some(rule(nodes)),
        _ => None,
    })
}

/// The static checks of the files under `dir`.
pub fn manifests(manifests: &[Manifest], dir: &str) -> Vec<Check> {
    let files = Files { manifests, dir };
    judge(|judge| match judge {
        Judge::Files(rule) => Some(rule(&files)),
        _ => None,
    })
}

/// The checks of the live objects of `namespace`.
pub fn objects(objects: &[Manifest], namespace: &str, registry: &RegistryConfig) -> Vec<Check> {
    let live = Live {
        objects,
        namespace,
        registry,
    };
    judge(|judge| match judge {
        Judge::Objects(rule) => Some(rule(&live)),
        _ => None,
    })
}

/// The checks of the rules `apply` can judge, in table order.
fn judge(apply: impl Fn(&Judge) -> Option<Verdict>) -> Vec<Check> {
    RULES
        .iter()
        .filter_map(|rule| apply(&rule.judge).map(|verdict| verdict.check(rule)))
        .collect()
}

/// The Deployment or StatefulSet named after the component.
pub(super) fn workload<'a>(objects: &'a [Manifest], component: &Component) -> Option<&'a Manifest> {
    objects
        .iter()
        .find(|m| m.is_workload() && m.name == component.name)
}

/// Where an object comes from: its key, and its file unless it is live.
pub(super) fn place(m: &Manifest) -> String {
    if m.file == "(live)" {
        m.key()
    } else {
        format!("{} ({})", m.key(), m.file)
    }
}

pub(super) fn array<'a>(value: &'a Value, pointer: &str) -> &'a [Value] {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub(super) fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::credentials::is_credential_name;
    use super::images::qualified;
    use super::*;
    use crate::deploy::secrets;
    use crate::deploy::{images, manifest};
    use crate::verify::Status;

    /// The shipped manifests as deploy sends them: images published to
    /// docker.io/student, and the Secrets they read.
    fn deployed() -> Vec<Manifest> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        let mut objects = manifest::load(&dir).unwrap();
        let published: Vec<images::Image> = [
            "inventory-app",
            "billing-app",
            "api-gateway",
            "postgres",
            "rabbitmq",
        ]
        .iter()
        .map(|name| images::Image {
            name: name.to_string(),
            dockerfile: format!("{name}.Dockerfile").into(),
            reference: format!("docker.io/student/{name}:abc"),
            digest: Some("sha256:0123".into()),
            platforms: Vec::new(),
            sideloaded: false,
        })
        .collect();
        for object in &mut objects {
            images::rewrite(object, &published);
        }
        let required = secrets::required(&objects);
        let values: BTreeMap<String, String> = required
            .values()
            .flatten()
            .map(|k| (k.clone(), "x".into()))
            .collect();
        objects.extend(secrets::objects(&required, &values));
        objects
    }

    fn registry() -> RegistryConfig {
        RegistryConfig {
            server: "docker.io".into(),
            namespace: "student".into(),
            ..RegistryConfig::default()
        }
    }

    fn check<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks.iter().find(|c| c.name == name).unwrap()
    }

    fn edit(objects: &mut [Manifest], key: &str, change: impl FnOnce(&mut Value)) {
        change(&mut objects.iter_mut().find(|m| m.key() == key).unwrap().body);
    }

    #[test]
    fn the_shipped_stack_passes_every_check() {
        let objects = deployed();
        for check in manifests(&objects, "manifests")
            .iter()
            .chain(&super::objects(&objects, "ns", &registry()))
        {
            assert_eq!(check.status, Status::Passed, "{check:#?}");
            assert!(!check.evidence.is_empty(), "{check:#?}");
        }
        let hpa = check(&super::objects(&objects, "ns", &registry()), AUTOSCALERS)
            .evidence
            .clone();
        assert!(hpa.contains(
            &"HorizontalPodAutoscaler/billing-app -> StatefulSet/billing-app: minReplicas 1, maxReplicas 3, CPU target 60%".to_string()
        ));
    }

    #[test]
    fn every_check_carries_its_rule_name_and_section_in_table_order() {
        let objects = deployed();
        let files = manifests(&objects, "manifests");
        let live = super::objects(&objects, "ns", &registry());
        for (section, checks) in [(Section::Manifests, files), (Section::Objects, live)] {
            let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, super::names(section));
            assert!(checks.iter().all(|c| c.section == section));
        }
        assert_eq!(
            super::names(Section::Objects),
            [KINDS, VOLUMES, AUTOSCALERS, PORTS, CREDENTIALS, IMAGES]
        );
        assert_eq!(super::names(Section::Cluster), [NODES]);
    }

    #[test]
    fn each_breakage_fails_its_check_with_the_reason() {
        let run = |change: &dyn Fn(&mut Vec<Manifest>), name: &str| {
            let mut objects = deployed();
            change(&mut objects);
            let all = super::objects(&objects, "ns", &registry());
            let found = check(&all, name);
            assert_eq!(found.status, Status::Failed, "{found:#?}");
            found.reason.join("\n")
        };
        let reason = run(
            &|o| {
                edit(o, "HorizontalPodAutoscaler/billing-app", |b| {
                    b["spec"]["maxReplicas"] = 5.into()
                })
            },
            AUTOSCALERS,
        );
        assert!(
            reason.contains("HorizontalPodAutoscaler/billing-app: maxReplicas 5, expected 3"),
            "{reason}"
        );
        let reason = run(
            &|o| {
                let m = o
                    .iter_mut()
                    .find(|m| m.key() == "StatefulSet/billing-db")
                    .unwrap();
                m.kind = "Deployment".into();
            },
            KINDS,
        );
        assert!(
            reason.contains("billing-db is a Deployment; the exercise wants a StatefulSet"),
            "{reason}"
        );
        let reason = run(
            &|o| {
                edit(o, "Deployment/inventory-app", |b| {
                    b["spec"]["template"]["spec"]["containers"][0]["env"][1] =
                        serde_json::json!({"name": "INVENTORY_DB_PASSWORD", "value": "hunter2"});
                })
            },
            CREDENTIALS,
        );
        assert!(reason.contains("Deployment/inventory-app (inventory-app.yaml) container inventory-app: env INVENTORY_DB_PASSWORD is a literal value"), "{reason}");
        assert!(!reason.contains("hunter2"), "{reason}");
        let reason = run(
            &|o| {
                edit(o, "Deployment/api-gateway", |b| {
                    b["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27".into()
                })
            },
            IMAGES,
        );
        assert!(
            reason.contains(
                "Deployment/api-gateway api-gateway: nginx:1.27 is not in docker.io/student"
            ),
            "{reason}"
        );
        let reason = run(
            &|o| o.retain(|m| m.key() != "Secret/rabbitmq-secret"),
            CREDENTIALS,
        );
        assert!(
            reason.contains("Secret/rabbitmq-secret does not exist"),
            "{reason}"
        );
        let reason = run(
            &|o| {
                edit(o, "StatefulSet/inventory-db", |b| {
                    b["spec"]["volumeClaimTemplates"] = Value::Array(vec![])
                })
            },
            VOLUMES,
        );
        assert!(
            reason.contains("StatefulSet/inventory-db has no volumeClaimTemplates"),
            "{reason}"
        );
        let reason = run(
            &|o| {
                edit(o, "Service/api-gateway", |b| {
                    b["spec"]["type"] = "NodePort".into()
                })
            },
            PORTS,
        );
        assert!(
            reason.contains("the gateway must be a LoadBalancer"),
            "{reason}"
        );
    }

    #[test]
    fn manifests_checks_find_shared_files_and_credentials() {
        let mut files = deployed();
        files.retain(|m| m.kind != "Secret");
        for m in files
            .iter_mut()
            .filter(|m| m.component() == Some("billing-db"))
        {
            m.file = "inventory-db.yaml".into();
        }
        edit(&mut files, "ConfigMap/app-config", |b| {
            b["data"]["RABBITMQ_PASSWORD"] = "guest".into()
        });
        let checks = manifests(&files, "manifests");
        let reason = check(&checks, ONE_FILE).reason.join("\n");
        assert!(
            reason.contains("inventory-db.yaml holds billing-db, inventory-db"),
            "{reason}"
        );
        let reason = check(&checks, NO_CREDENTIALS_IN_FILES).reason.join("\n");
        assert!(
            reason.contains("ConfigMap/app-config (config.yaml): key RABBITMQ_PASSWORD holds a credential outside a Secret"),
            "{reason}"
        );
    }

    #[test]
    fn a_secret_password_found_elsewhere_is_a_leak() {
        let mut objects = deployed();
        let secret = objects
            .iter_mut()
            .find(|m| m.key() == "Secret/billing-db-secret")
            .unwrap();
        secret.body["data"]["BILLING_DB_PASSWORD"] = "czNjcmV0LXB3".into(); // "s3cret-pw"
        edit(&mut objects, "ConfigMap/app-config", |b| {
            b["data"]["BILLING_DB_URL"] = "postgres://billing:s3cret-pw@billing-db/orders".into()
        });
        let all = super::objects(&objects, "ns", &registry());
        let reason = check(&all, CREDENTIALS).reason.join("\n");
        assert!(
            reason.contains("ConfigMap/app-config (config.yaml): a value contains the password of Secret/billing-db-secret key BILLING_DB_PASSWORD"),
            "{reason}"
        );
        assert!(!reason.contains("s3cret"), "{reason}");
    }

    #[test]
    fn credential_names_and_image_registries() {
        for name in [
            "INVENTORY_DB_PASSWORD",
            "RABBITMQ_DEFAULT_PASS",
            "POSTGRES_USER",
            "api-token",
            "AWS_ACCESS_KEY",
        ] {
            assert!(is_credential_name(name), "{name}");
        }
        for name in [
            "POSTGRES_DB",
            "PGDATA",
            "RABBITMQ_QUEUE",
            "INVENTORY_DB_HOST",
            "USERS_URL",
        ] {
            assert!(!is_credential_name(name), "{name}");
        }
        assert_eq!(qualified("nginx"), "docker.io/library/nginx");
        assert_eq!(qualified("student/a:1"), "docker.io/student/a:1");
        assert_eq!(qualified("ghcr.io/student/a"), "ghcr.io/student/a");
    }

    #[test]
    fn nodes_need_a_ready_master_and_agent() {
        let node = |name: &str, roles: &[&str], ready: bool| NodeSummary {
            name: name.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ready,
            version: "v1.31.6+k3s1".into(),
        };
        let good = cluster(&[
            node("agent", &[], true),
            node("master", &["control-plane", "master"], true),
        ])
        .remove(0);
        assert_eq!(good.name, NODES);
        assert_eq!(good.status, Status::Passed);
        assert_eq!(
            good.evidence[1],
            "Node/master: Ready, roles control-plane,master, kubelet v1.31.6+k3s1"
        );
        let bad = cluster(&[node("master", &["control-plane"], false)]).remove(0);
        assert_eq!(bad.status, Status::Failed);
        let reason = bad.reason.join("\n");
        assert!(
            reason.contains("1 node(s)")
                && reason.contains("master is not Ready")
                && reason.contains("no agent"),
            "{reason}"
        );
    }
}
