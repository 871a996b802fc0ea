//! The audit's rules as pure functions: nodes, and objects read as
//! [`Manifest`]s — the files under `manifests/` or the live objects of the
//! namespace — so the same rule judges both and is tested on YAML.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{COMPONENTS, Check, Component, Section};
use crate::config::RegistryConfig;
use crate::deploy::manifest::Manifest;
use crate::deploy::secrets;
use crate::nodes::NodeSummary;

pub const NODES: &str = "at least two Ready nodes: a control plane and an agent";
pub const ONE_FILE: &str = "one manifest file per component";
pub const NO_CREDENTIALS_IN_FILES: &str = "no credential outside Secret manifests";
pub const MANIFEST_CHECKS: [&str; 2] = [ONE_FILE, NO_CREDENTIALS_IN_FILES];

pub const KINDS: &str = "StatefulSets for the databases, rabbitmq and billing-app; Deployments for inventory-app and api-gateway";
pub const VOLUMES: &str = "databases and queue keep their data on volume claims";
pub const AUTOSCALERS: &str = "autoscalers: 1 to 3 replicas at 60% CPU";
pub const PORTS: &str =
    "ports 5432, 5432, 5672, 8080, 8080, 3000; the gateway behind a LoadBalancer";
pub const CREDENTIALS: &str = "credentials come from Secrets, and the Secrets hold them all";
pub const IMAGES: &str = "images from the registry namespace";
pub const OBJECT_CHECKS: [&str; 6] = [KINDS, VOLUMES, AUTOSCALERS, PORTS, CREDENTIALS, IMAGES];

/// The autoscaling rule of the exercise.
const MIN_REPLICAS: i64 = 1;
const MAX_REPLICAS: i64 = 3;
const CPU_PERCENT: i64 = 60;

pub fn nodes(nodes: &[NodeSummary]) -> Check {
    let is_control_plane = |n: &NodeSummary| {
        n.roles
            .iter()
            .any(|r| r == "control-plane" || r == "master")
    };
    let evidence = nodes
        .iter()
        .map(|n| {
            let roles = if n.roles.is_empty() {
                "<none>".to_string()
            } else {
                n.roles.join(",")
            };
            let ready = if n.ready { "Ready" } else { "NotReady" };
            format!(
                "Node/{}: {ready}, roles {roles}, kubelet {}",
                n.name, n.version
            )
        })
        .collect();
    let mut problems = Vec::new();
    if nodes.len() < 2 {
        problems.push(format!(
            "{} node(s); the exercise wants a master and at least one agent",
            nodes.len()
        ));
    }
    problems.extend(
        nodes
            .iter()
            .filter(|n| !n.ready)
            .map(|n| format!("{} is not Ready", n.name)),
    );
    if !nodes.iter().any(is_control_plane) {
        problems.push("no node has the control-plane role".into());
    }
    if !nodes.iter().any(|n| !is_control_plane(n)) {
        problems.push("no agent: every node is a control plane".into());
    }
    Check::judged(
        Section::Cluster,
        NODES,
        evidence,
        problems,
        "start the VMs with `orchestrator start` (or `orchestrator create`); `kubectl get nodes` shows each node's state",
    )
}

/// The static checks of the files under `dir`.
pub fn manifests(files: &[Manifest], dir: &str) -> Vec<Check> {
    vec![
        one_file_per_component(files, dir),
        credentials_in_files(files),
    ]
}

fn one_file_per_component(files: &[Manifest], dir: &str) -> Check {
    let mut evidence = Vec::new();
    let mut problems = Vec::new();
    let mut owners: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for component in COMPONENTS {
        let objects: Vec<&Manifest> = files
            .iter()
            .filter(|m| m.component() == Some(component.name))
            .collect();
        let names: BTreeSet<&str> = objects.iter().map(|m| m.file.as_str()).collect();
        for file in &names {
            owners.entry(file).or_default().insert(component.name);
        }
        let keys: Vec<String> = objects.iter().map(|m| m.key()).collect();
        match names.len() {
            0 => problems.push(format!(
                "{}: no object labelled app.kubernetes.io/name: {0}",
                component.name
            )),
            1 => evidence.push(format!(
                "{}: {} ({})",
                component.name,
                objects[0].file,
                keys.join(", ")
            )),
            _ => problems.push(format!(
                "{}: spread over {}",
                component.name,
                names.into_iter().collect::<Vec<_>>().join(", ")
            )),
        }
    }
    for (file, components) in owners.iter().filter(|(_, c)| c.len() > 1) {
        problems.push(format!(
            "{file} holds {}",
            components.iter().copied().collect::<Vec<_>>().join(", ")
        ));
    }
    Check::judged(
        Section::Manifests,
        ONE_FILE,
        evidence,
        problems,
        &format!(
            "keep each component's objects (workload, Service, autoscaler) in a file of its own in {dir}"
        ),
    )
}

fn credentials_in_files(files: &[Manifest]) -> Check {
    Check::judged(
        Section::Manifests,
        NO_CREDENTIALS_IN_FILES,
        secret_references(files),
        credential_leaks(files),
        "read credentials with valueFrom.secretKeyRef (deploy creates the Secrets from .env) and deploy again",
    )
}

/// The checks of the live objects of `namespace`.
pub fn objects(objects: &[Manifest], namespace: &str, registry: &RegistryConfig) -> Vec<Check> {
    let fix = format!(
        "fix the manifest and run `orchestrator deploy`; `kubectl -n {namespace} get deploy,sts,hpa,svc` shows what runs"
    );
    vec![
        kinds(objects, &fix),
        volumes(objects, &fix),
        autoscalers(objects, &fix),
        ports(objects, &fix),
        live_credentials(objects, namespace),
        images(objects, registry),
    ]
}

/// The Deployment or StatefulSet named after the component.
fn workload<'a>(objects: &'a [Manifest], component: &Component) -> Option<&'a Manifest> {
    objects
        .iter()
        .find(|m| m.is_workload() && m.name == component.name)
}

fn kinds(objects: &[Manifest], fix: &str) -> Check {
    let mut evidence = Vec::new();
    let mut problems = Vec::new();
    for component in COMPONENTS {
        match workload(objects, &component) {
            Some(m) if m.kind == component.kind => {
                evidence.push(format!("{}: kind {}", m.key(), m.kind))
            }
            Some(m) => problems.push(format!(
                "{} is a {}; the exercise wants a {}",
                component.name, m.kind, component.kind
            )),
            None => problems.push(format!(
                "no Deployment or StatefulSet named {}",
                component.name
            )),
        }
    }
    Check::judged(Section::Objects, KINDS, evidence, problems, fix)
}

fn volumes(objects: &[Manifest], fix: &str) -> Check {
    let mut evidence = Vec::new();
    let mut problems = Vec::new();
    for component in COMPONENTS.iter().filter(|c| c.storage) {
        let Some(m) = workload(objects, component) else {
            problems.push(format!("no workload named {}", component.name));
            continue;
        };
        let templates = array(&m.body, "/spec/volumeClaimTemplates");
        if templates.is_empty() {
            problems.push(format!(
                "{} has no volumeClaimTemplates: its data dies with its pod",
                m.key()
            ));
            continue;
        }
        let mounts: Vec<&Value> = m
            .containers()
            .iter()
            .flat_map(|c| array(c, "/volumeMounts"))
            .collect();
        for template in templates {
            let name = text(template, "/metadata/name");
            let size = text(template, "/spec/resources/requests/storage");
            let modes: Vec<&str> = array(template, "/spec/accessModes")
                .iter()
                .filter_map(|v| v.as_str())
                .collect();
            match mounts.iter().find(|v| text(v, "/name") == name) {
                Some(mount) => evidence.push(format!(
                    "{}: volumeClaimTemplates {name} ({size}, {}) mounted at {}",
                    m.key(),
                    modes.join(","),
                    text(mount, "/mountPath")
                )),
                None => problems.push(format!(
                    "{}: the claim {name} is mounted by no container",
                    m.key()
                )),
            }
        }
    }
    Check::judged(Section::Objects, VOLUMES, evidence, problems, fix)
}

fn autoscalers(objects: &[Manifest], fix: &str) -> Check {
    let mut evidence = Vec::new();
    let mut problems = Vec::new();
    for component in COMPONENTS.iter().filter(|c| c.autoscaled) {
        let target = objects
            .iter()
            .filter(|m| m.kind == "HorizontalPodAutoscaler")
            .find(|m| text(&m.body, "/spec/scaleTargetRef/name") == component.name);
        let Some(hpa) = target else {
            problems.push(format!(
                "no HorizontalPodAutoscaler targets {}",
                component.name
            ));
            continue;
        };
        let spec = &hpa.body["spec"];
        let target_kind = text(spec, "/scaleTargetRef/kind");
        let min = spec
            .get("minReplicas")
            .and_then(Value::as_i64)
            .unwrap_or(MIN_REPLICAS);
        let max = spec.get("maxReplicas").and_then(Value::as_i64).unwrap_or(0);
        let cpu = cpu_target(spec);
        evidence.push(format!(
            "{} -> {target_kind}/{}: minReplicas {min}, maxReplicas {max}, CPU target {}",
            hpa.key(),
            component.name,
            cpu.map_or("none".into(), |c| format!("{c}%"))
        ));
        let mut wrong = Vec::new();
        if target_kind != component.kind {
            wrong.push(format!(
                "targets a {target_kind}, not the {}",
                component.kind
            ));
        }
        if min != MIN_REPLICAS {
            wrong.push(format!("minReplicas {min}, expected {MIN_REPLICAS}"));
        }
        if max != MAX_REPLICAS {
            wrong.push(format!("maxReplicas {max}, expected {MAX_REPLICAS}"));
        }
        if cpu != Some(CPU_PERCENT) {
            wrong.push(format!(
                "CPU target {}, expected {CPU_PERCENT}%",
                cpu.map_or("absent".into(), |c| format!("{c}%"))
            ));
        }
        if !wrong.is_empty() {
            problems.push(format!("{}: {}", hpa.key(), wrong.join("; ")));
        }
    }
    Check::judged(Section::Objects, AUTOSCALERS, evidence, problems, fix)
}

/// The CPU utilisation target: autoscaling/v1's field, or a v2 Resource metric.
fn cpu_target(spec: &Value) -> Option<i64> {
    spec.get("targetCPUUtilizationPercentage")
        .and_then(Value::as_i64)
        .or_else(|| {
            array(spec, "/metrics")
                .iter()
                .find(|m| text(m, "/resource/name") == "cpu")
                .and_then(|m| m.pointer("/resource/target/averageUtilization"))
                .and_then(Value::as_i64)
        })
}

fn ports(objects: &[Manifest], fix: &str) -> Check {
    let mut evidence = Vec::new();
    let mut problems = Vec::new();
    for component in COMPONENTS {
        let port = i64::from(component.port);
        let container_port = workload(objects, &component).and_then(|m| {
            m.containers().into_iter().find_map(|c| {
                array(c, "/ports")
                    .iter()
                    .any(|p| p.get("containerPort").and_then(Value::as_i64) == Some(port))
                    .then(|| text(c, "/name").to_string())
            })
        });
        let service = objects
            .iter()
            .find(|m| m.kind == "Service" && m.name == component.name);
        let service_port = service.filter(|s| {
            array(&s.body, "/spec/ports")
                .iter()
                .any(|p| p.get("port").and_then(Value::as_i64) == Some(port))
        });
        match (service_port, &container_port) {
            (Some(service), Some(container)) => {
                let kind = text(&service.body, "/spec/type");
                let kind = if kind.is_empty() { "ClusterIP" } else { kind };
                evidence.push(format!(
                    "{}: type {kind}, port {port} -> container {container} port {port}",
                    service.key()
                ));
                if component.name == "api-gateway" && kind != "LoadBalancer" {
                    problems.push(format!(
                        "{} is of type {kind}; the gateway must be a LoadBalancer",
                        service.key()
                    ));
                }
            }
            (None, _) if service.is_none() => {
                problems.push(format!("no Service named {}", component.name))
            }
            (None, _) => problems.push(format!(
                "Service/{} does not expose port {port}",
                component.name
            )),
            (_, None) => problems.push(format!(
                "no container of {} declares containerPort {port}",
                component.name
            )),
        }
    }
    Check::judged(Section::Objects, PORTS, evidence, problems, fix)
}

fn live_credentials(objects: &[Manifest], namespace: &str) -> Check {
    let workloads: Vec<Manifest> = objects
        .iter()
        .filter(|m| m.is_workload())
        .cloned()
        .collect();
    let mut evidence = secret_references(objects);
    let mut problems = credential_leaks(objects);
    for (secret, keys) in secrets::required(&workloads) {
        let held: BTreeSet<&str> = objects
            .iter()
            .find(|m| m.kind == "Secret" && m.name == secret)
            .map(|m| {
                ["data", "stringData"]
                    .iter()
                    .filter_map(|field| m.body.get(field).and_then(Value::as_object))
                    .flat_map(|map| map.keys().map(String::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let missing: Vec<&str> = keys
            .iter()
            .map(String::as_str)
            .filter(|k| !held.contains(k))
            .collect();
        match (held.is_empty(), missing.is_empty()) {
            (_, true) => evidence.push(format!(
                "Secret/{secret} holds {}",
                keys.iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            (true, false) => problems.push(format!("Secret/{secret} does not exist (or is empty)")),
            (false, false) => {
                problems.push(format!("Secret/{secret} lacks {}", missing.join(", ")))
            }
        }
    }
    Check::judged(
        Section::Objects,
        CREDENTIALS,
        evidence,
        problems,
        &format!(
            "read credentials with valueFrom.secretKeyRef and run `orchestrator deploy` (it creates the Secrets); \
             `kubectl -n {namespace} get secrets -o json` shows them"
        ),
    )
}

fn images(objects: &[Manifest], registry: &RegistryConfig) -> Check {
    if registry.namespace.is_empty() {
        return Check::skipped(
            Section::Objects,
            IMAGES,
            "registry.namespace is not set: set it in orchestrator.toml or DOCKERHUB_USERNAME to your Docker Hub user",
        );
    }
    let prefix = format!("{}/{}/", registry.server, registry.namespace);
    let mut evidence = Vec::new();
    let mut problems = Vec::new();
    for (container, image) in container_images(objects) {
        if qualified(&image).starts_with(&prefix) {
            evidence.push(format!("{container}: {image}"));
        } else {
            problems.push(format!(
                "{container}: {image} is not in {}",
                prefix.trim_end_matches('/')
            ));
        }
    }
    Check::judged(
        Section::Objects,
        IMAGES,
        evidence,
        problems,
        "build and push the images to your Docker Hub account with `orchestrator deploy` (registry.namespace or DOCKERHUB_USERNAME names it)",
    )
}

/// `Kind/name container` and its image, for every container of every workload.
fn container_images(objects: &[Manifest]) -> Vec<(String, String)> {
    objects
        .iter()
        .filter(|m| m.is_workload())
        .flat_map(|m| {
            m.containers().into_iter().map(move |c| {
                (
                    format!("{} {}", m.key(), text(c, "/name")),
                    text(c, "/image").to_string(),
                )
            })
        })
        .collect()
}

/// The distinct images the workloads run, sorted.
pub fn images_in(objects: &[Manifest]) -> Vec<String> {
    let images: BTreeSet<String> = container_images(objects)
        .into_iter()
        .map(|(_, image)| image)
        .collect();
    images.into_iter().collect()
}

/// An image reference with the registry Docker assumes when it names none.
fn qualified(image: &str) -> String {
    let first = image.split('/').next().unwrap_or_default();
    let has_registry =
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    match (has_registry, image.contains('/')) {
        (true, _) => image.to_string(),
        (false, true) => format!("docker.io/{image}"),
        (false, false) => format!("docker.io/library/{image}"),
    }
}

/// Whether a variable or key name says it holds a credential.
fn is_credential_name(name: &str) -> bool {
    const WORDS: &[&str] = &[
        "PASSWORD", "PASS", "PASSWD", "PWD", "TOKEN", "SECRET", "USER", "USERNAME", "APIKEY",
    ];
    let upper = name.to_ascii_uppercase();
    let words: Vec<&str> = upper.split(['_', '-', '.']).collect();
    words.iter().any(|w| WORDS.contains(w))
        || words
            .windows(2)
            .any(|pair| pair[1] == "KEY" && ["API", "ACCESS", "PRIVATE"].contains(&pair[0]))
}

fn place(m: &Manifest) -> String {
    if m.file == "(live)" {
        m.key()
    } else {
        format!("{} ({})", m.key(), m.file)
    }
}

/// Credentials held by value outside Secrets: literal or ConfigMap-sourced
/// env values with a credential's name, credential keys in ConfigMaps,
/// credentials on command lines, and any value that contains a password one
/// of the Secrets among `objects` holds (whatever the name around it).
fn credential_leaks(objects: &[Manifest]) -> Vec<String> {
    let mut leaks = Vec::new();
    let passwords = secret_passwords(objects);
    for m in objects.iter().filter(|m| m.kind != "Secret") {
        let mut values = Vec::new();
        strings(&m.body, &mut values);
        for (source, password) in &passwords {
            if values.iter().any(|v| v.contains(password.as_str())) {
                leaks.push(format!(
                    "{}: a value contains the password of {source}",
                    place(m)
                ));
            }
        }
        if m.kind == "ConfigMap" {
            for field in ["data", "binaryData"] {
                let keys = m
                    .body
                    .get(field)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flat_map(|map| map.keys());
                leaks.extend(
                    keys.filter(|k| is_credential_name(k)).map(|k| {
                        format!("{}: key {k} holds a credential outside a Secret", place(m))
                    }),
                );
            }
        }
        for container in m.containers() {
            let at = format!("{} container {}", place(m), text(container, "/name"));
            for env in array(container, "/env") {
                let name = text(env, "/name");
                if !is_credential_name(name) {
                    continue;
                }
                if env.get("value").is_some_and(|v| v.as_str() != Some("")) {
                    leaks.push(format!("{at}: env {name} is a literal value"));
                } else if let Some(map) = env.pointer("/valueFrom/configMapKeyRef") {
                    leaks.push(format!(
                        "{at}: env {name} comes from ConfigMap {}, not a Secret",
                        text(map, "/name")
                    ));
                }
            }
            let flags = ["command", "args"]
                .into_iter()
                .flat_map(|field| array(container, &format!("/{field}")));
            for flag in flags.filter_map(Value::as_str) {
                let lower = flag.to_ascii_lowercase();
                if ["password=", "passwd=", "token=", "secret="]
                    .iter()
                    .any(|p| lower.contains(p))
                {
                    leaks.push(format!(
                        "{at}: a command-line argument carries a credential"
                    ));
                }
            }
        }
    }
    leaks
}

/// The passwords (not user names) the Secrets among `objects` hold, each
/// with `Secret/NAME key KEY`; too short a value would match by chance.
fn secret_passwords(objects: &[Manifest]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for m in objects.iter().filter(|m| m.kind == "Secret") {
        let Ok(secret) =
            serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(m.body.clone())
        else {
            continue;
        };
        let decoded = secret
            .data
            .into_iter()
            .flatten()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()));
        for (key, value) in decoded.chain(secret.string_data.into_iter().flatten()) {
            let is_user = key
                .to_ascii_uppercase()
                .split(['_', '-', '.'])
                .any(|w| w == "USER" || w == "USERNAME");
            if is_credential_name(&key) && !is_user && value.len() >= 6 {
                found.push((format!("{} key {key}", m.key()), value));
            }
        }
    }
    found
}

/// Every string in a value, but the server's bookkeeping (managedFields).
fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| *k != "managedFields")
            .for_each(|(_, v)| strings(v, out)),
        _ => {}
    }
}

/// Evidence: which Secret keys each workload reads.
fn secret_references(objects: &[Manifest]) -> Vec<String> {
    objects
        .iter()
        .filter(|m| m.is_workload())
        .filter_map(|m| {
            let refs: Vec<String> = m
                .containers()
                .into_iter()
                .flat_map(|c| array(c, "/env"))
                .filter_map(|env| {
                    let secret = env.pointer("/valueFrom/secretKeyRef")?;
                    Some(format!(
                        "{} <- {}/{}",
                        text(env, "/name"),
                        text(secret, "/name"),
                        text(secret, "/key")
                    ))
                })
                .collect();
            (!refs.is_empty()).then(|| format!("{}: {}", place(m), refs.join(", ")))
        })
        .collect()
}

fn array<'a>(value: &'a Value, pointer: &str) -> &'a [Value] {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
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
        let good = nodes(&[
            node("agent", &[], true),
            node("master", &["control-plane", "master"], true),
        ]);
        assert_eq!(good.status, Status::Passed);
        assert_eq!(
            good.evidence[1],
            "Node/master: Ready, roles control-plane,master, kubelet v1.31.6+k3s1"
        );
        let bad = nodes(&[node("master", &["control-plane"], false)]);
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
