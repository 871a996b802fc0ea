//! `verify`: the exercise's audit as one command. Every point an auditor
//! checks by hand becomes a [`Check`] that either passed, failed (with what is
//! wrong and what to do) or was skipped (with why), and always carries its
//! evidence: the object and field it read, the request and the status it got.
//!
//! The judging is pure ([`checks`]: nodes, manifests and live objects are all
//! read as [`Manifest`]s, so one rule serves the files and the cluster);
//! this module only gathers the inputs, times the checks and bundles them
//! into an [`Audit`], which [`report`] renders as a checklist, Markdown or JSON.

pub mod api;
pub mod billing;
pub mod checks;
pub mod report;

use std::path::Path;
use std::time::Instant;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, ListParams};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::deploy::manifest::{self, Manifest};
use crate::reporter::Reporter;
use billing::BillingControl;

/// The part of the audit a check belongs to, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    Cluster,
    Manifests,
    Objects,
    Api,
}

impl Section {
    pub fn title(self) -> &'static str {
        match self {
            Section::Cluster => "cluster",
            Section::Manifests => "manifests",
            Section::Objects => "live objects",
            Section::Api => "API through the gateway",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    /// Could not run; never counts as passed.
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub section: Section,
    pub name: String,
    pub status: Status,
    /// What was read or sent, and what came back.
    pub evidence: Vec<String>,
    /// Failed: each problem, then what to do. Skipped: why it could not run.
    pub reason: Vec<String>,
    pub seconds: f64,
}

impl Check {
    pub fn passed(section: Section, name: &str, evidence: Vec<String>) -> Check {
        Check {
            section,
            name: name.into(),
            status: Status::Passed,
            evidence,
            reason: Vec::new(),
            seconds: 0.0,
        }
    }

    pub fn failed(
        section: Section,
        name: &str,
        evidence: Vec<String>,
        reason: Vec<String>,
    ) -> Check {
        Check {
            status: Status::Failed,
            reason,
            ..Check::passed(section, name, evidence)
        }
    }

    /// Passed when there are no problems; else failed with them and the hint.
    pub fn judged(
        section: Section,
        name: &str,
        evidence: Vec<String>,
        problems: Vec<String>,
        hint: &str,
    ) -> Check {
        if problems.is_empty() {
            return Check::passed(section, name, evidence);
        }
        let reason = problems
            .into_iter()
            .chain(std::iter::once(hint.to_string()))
            .collect();
        Check::failed(section, name, evidence, reason)
    }

    pub fn skipped(section: Section, name: &str, why: &str) -> Check {
        Check {
            status: Status::Skipped,
            reason: vec![why.into()],
            ..Check::passed(section, name, Vec::new())
        }
    }

    fn took(mut self, started: Instant) -> Check {
        self.seconds = started.elapsed().as_secs_f64();
        self
    }
}

/// The six components of the stack, as DESIGN.md and the exercise define them.
#[derive(Debug, Clone, Copy)]
pub struct Component {
    pub name: &'static str,
    pub kind: &'static str,
    pub port: i32,
    /// Keeps its data on a volume of its own (volumeClaimTemplates).
    pub storage: bool,
    /// Has a HorizontalPodAutoscaler.
    pub autoscaled: bool,
}

pub const COMPONENTS: [Component; 6] = [
    Component {
        name: "inventory-db",
        kind: "StatefulSet",
        port: 5432,
        storage: true,
        autoscaled: false,
    },
    Component {
        name: "billing-db",
        kind: "StatefulSet",
        port: 5432,
        storage: true,
        autoscaled: false,
    },
    Component {
        name: "rabbitmq",
        kind: "StatefulSet",
        port: 5672,
        storage: true,
        autoscaled: false,
    },
    Component {
        name: "inventory-app",
        kind: "Deployment",
        port: 8080,
        storage: false,
        autoscaled: true,
    },
    Component {
        name: "billing-app",
        kind: "StatefulSet",
        port: 8080,
        storage: false,
        autoscaled: true,
    },
    Component {
        name: "api-gateway",
        kind: "Deployment",
        port: 3000,
        storage: false,
        autoscaled: true,
    },
];

/// Everything `verify` found, as the checklist and the evidence bundle show it.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    pub tool: String,
    /// RFC 3339.
    pub started_at: String,
    pub cluster: String,
    pub cluster_version: String,
    pub namespace: String,
    pub gateway: Option<String>,
    /// Every workload container's image, as deployed (pinned by digest when pushed).
    pub images: Vec<String>,
    /// `file  sha256`, of every file under the manifests directory.
    pub manifests: Vec<String>,
    pub checks: Vec<Check>,
    pub seconds: f64,
}

impl Audit {
    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// Every check ran and passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status == Status::Passed)
    }
}

/// What the audit looks at.
pub struct Target<'a> {
    pub config: &'a Config,
    pub manifests_dir: &'a Path,
    pub client: &'a kube::Client,
    /// "context NAME in FILE (SERVER)".
    pub cluster: &'a str,
    /// `--gateway-url`; else the LoadBalancer Service's address.
    pub gateway: Option<String>,
}

/// Runs every check in order; `billing` stops and restarts billing-app for
/// the API checks (and always restores it).
pub async fn run(
    target: &Target<'_>,
    billing: &dyn BillingControl,
    reporter: &dyn Reporter,
) -> Audit {
    let started = Instant::now();
    let started_at = k8s_openapi::jiff::Timestamp::now().to_string();
    let namespace = target.config.deploy.namespace.as_str();
    let mut audit_checks = Vec::new();

    reporter.started("cluster", "cluster");
    let clock = Instant::now();
    let (cluster_version, nodes) = tokio::join!(
        target.client.apiserver_version(),
        crate::nodes::list(target.client.clone())
    );
    audit_checks.push(
        match nodes {
            Ok(nodes) => checks::nodes(&nodes),
            Err(err) => Check::skipped(
                Section::Cluster,
                checks::NODES,
                &format!("cannot list the nodes: {err:#}"),
            ),
        }
        .took(clock),
    );
    finish(reporter, "cluster", &audit_checks);

    reporter.started("manifests", "manifests");
    let clock = Instant::now();
    let dir = target.manifests_dir.display().to_string();
    match manifest::load(target.manifests_dir) {
        Ok(files) => audit_checks.extend(
            checks::manifests(&files, &dir)
                .into_iter()
                .map(|c| c.took(clock)),
        ),
        Err(err) => {
            let why = format!("cannot read the manifests in {dir}: {err:#}");
            audit_checks.extend(
                checks::MANIFEST_CHECKS
                    .iter()
                    .map(|name| Check::skipped(Section::Manifests, name, &why)),
            );
        }
    }
    finish(reporter, "manifests", &audit_checks);

    reporter.started("objects", &format!("objects in namespace {namespace}"));
    let clock = Instant::now();
    let live = live_objects(target.client, namespace).await;
    let images = live
        .as_ref()
        .map(|objects| checks::images_in(objects))
        .unwrap_or_default();
    match &live {
        Ok(objects) => audit_checks.extend(
            checks::objects(objects, namespace, &target.config.registry)
                .into_iter()
                .map(|c| c.took(clock)),
        ),
        Err(err) => {
            let why = format!("cannot list the objects in namespace {namespace}: {err:#}");
            audit_checks.extend(
                checks::OBJECT_CHECKS
                    .iter()
                    .map(|name| Check::skipped(Section::Objects, name, &why)),
            );
        }
    }
    finish(reporter, "objects", &audit_checks);

    reporter.started("api", "API through the gateway");
    let gateway = match &target.gateway {
        Some(url) => Ok(url.trim_end_matches('/').to_string()),
        None => match crate::stack::gateway_url(target.client, namespace).await {
            Ok(Some(url)) => Ok(url),
            Ok(None) => Err(format!(
                "no LoadBalancer Service in namespace {namespace} has an address (is api-gateway deployed? `kubectl -n {namespace} get svc api-gateway`); \
                 or pass --gateway-url"
            )),
            Err(err) => Err(format!(
                "cannot read the Services of namespace {namespace}: {err}"
            )),
        },
    };
    audit_checks.extend(
        api::run(
            gateway.as_deref().map_err(String::as_str),
            billing,
            reporter,
        )
        .await,
    );
    finish(reporter, "api", &audit_checks);

    Audit {
        tool: format!("orchestrator {}", env!("CARGO_PKG_VERSION")),
        started_at,
        cluster: target.cluster.to_string(),
        cluster_version: cluster_version
            .map_or_else(|err| format!("unknown ({err})"), |v| v.git_version),
        namespace: namespace.to_string(),
        gateway: gateway.ok(),
        images,
        manifests: hashes(target.manifests_dir),
        checks: audit_checks,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Ends a section's progress line with its tally.
fn finish(reporter: &dyn Reporter, id: &str, all: &[Check]) {
    let section = all.last().map(|c| c.section);
    let of_section: Vec<&Check> = all.iter().filter(|c| Some(c.section) == section).collect();
    let failed = of_section
        .iter()
        .filter(|c| c.status != Status::Passed)
        .count();
    let message = match failed {
        0 => format!("{} passed", of_section.len()),
        n => format!("{n} of {} not passed", of_section.len()),
    };
    reporter.finished(id, failed == 0, &message);
}

/// The stack's live objects, read as manifests so the same rules judge both.
pub async fn live_objects(client: &kube::Client, namespace: &str) -> anyhow::Result<Vec<Manifest>> {
    let lists = tokio::try_join!(
        list::<Deployment>(client, namespace),
        list::<StatefulSet>(client, namespace),
        list::<HorizontalPodAutoscaler>(client, namespace),
        list::<Service>(client, namespace),
        list::<Secret>(client, namespace),
        list::<ConfigMap>(client, namespace),
    )?;
    Ok([lists.0, lists.1, lists.2, lists.3, lists.4, lists.5].concat())
}

async fn list<K>(client: &kube::Client, namespace: &str) -> anyhow::Result<Vec<Manifest>>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Serialize
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let objects = Api::<K>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?;
    objects.items.iter().map(as_manifest).collect()
}

fn as_manifest<K: kube::Resource<DynamicType = ()> + Serialize>(
    object: &K,
) -> anyhow::Result<Manifest> {
    let mut body = serde_json::to_value(object)?;
    body["apiVersion"] = K::api_version(&()).into();
    body["kind"] = K::kind(&()).into();
    Ok(Manifest {
        file: "(live)".into(),
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: object.meta().name.clone().unwrap_or_default(),
        body,
    })
}

/// `FILE  SHA256` of every file directly under `dir`, sorted.
fn hashes(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut lines: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let bytes = std::fs::read(entry.path()).ok()?;
            Some(format!(
                "{}  sha256:{:x}",
                entry.file_name().to_string_lossy(),
                Sha256::digest(bytes)
            ))
        })
        .collect();
    lines.sort();
    lines
}
