//! The rollout order. Objects go out in waves, each gated on the readiness of
//! its workloads: the namespace, then configuration and Secrets, then the
//! components level by level along their `orchestrator/depends-on`
//! annotations (databases and queue, then the apps that use them, then the
//! gateway), and last the objects nothing waits for (autoscalers, network
//! policies) — so a policy never cuts a flow before both ends exist.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;

use super::manifest::Manifest;

#[derive(Debug, Clone, PartialEq)]
pub struct Wave {
    pub name: String,
    pub objects: Vec<Manifest>,
}

impl Wave {
    /// The objects whose readiness ends the wave.
    pub fn workloads(&self) -> impl Iterator<Item = &Manifest> {
        self.objects.iter().filter(|m| m.is_workload())
    }
}

/// Kinds applied before any workload.
fn is_config(kind: &str) -> bool {
    matches!(
        kind,
        "ConfigMap" | "Secret" | "ServiceAccount" | "Role" | "RoleBinding"
    )
}

/// Kinds applied after every workload.
fn is_final(kind: &str) -> bool {
    matches!(
        kind,
        "HorizontalPodAutoscaler" | "NetworkPolicy" | "PodDisruptionBudget"
    )
}

/// Splits the objects into waves; a dependency on an unknown component, or a
/// cycle, is an error naming the components. The components in `deployed`
/// count as in place already: `deploy --only` applies one component, not
/// what it depends on.
pub fn plan(objects: Vec<Manifest>, deployed: &BTreeSet<String>) -> anyhow::Result<Vec<Wave>> {
    let mut namespace = Vec::new();
    let mut config = Vec::new();
    let mut last = Vec::new();
    let mut by_component: BTreeMap<String, Vec<Manifest>> = BTreeMap::new();
    for object in objects {
        if object.kind == "Namespace" {
            namespace.push(object);
        } else if is_config(&object.kind) {
            config.push(object);
        } else if is_final(&object.kind) {
            last.push(object);
        } else {
            let component = object.component().unwrap_or(&object.name).to_string();
            by_component.entry(component).or_default().push(object);
        }
    }

    let dependencies: BTreeMap<&str, BTreeSet<String>> = by_component
        .iter()
        .map(|(component, objects)| {
            let deps = objects.iter().flat_map(Manifest::depends_on).collect();
            (component.as_str(), deps)
        })
        .collect();
    let known = |d: &&String| dependencies.contains_key(d.as_str()) || deployed.contains(*d);
    for (component, deps) in &dependencies {
        if let Some(unknown) = deps.iter().find(|d| !known(d)) {
            bail!("{component} depends on {unknown}, which no manifest defines");
        }
    }

    let mut waves = Vec::new();
    let mut push = |name: String, objects: Vec<Manifest>| {
        if !objects.is_empty() {
            waves.push(Wave { name, objects });
        }
    };
    push("namespace".into(), namespace);
    push("config".into(), config);
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while done.len() < dependencies.len() {
        let level: Vec<&str> = dependencies
            .iter()
            .filter(|(c, deps)| {
                !done.contains(*c)
                    && deps
                        .iter()
                        .all(|d| done.contains(d.as_str()) || deployed.contains(d))
            })
            .map(|(c, _)| *c)
            .collect();
        if level.is_empty() {
            let stuck: Vec<&str> = dependencies
                .keys()
                .filter(|c| !done.contains(*c))
                .copied()
                .collect();
            bail!(
                "the components {} depend on each other in a cycle",
                stuck.join(", ")
            );
        }
        let objects = level
            .iter()
            .flat_map(|c| by_component.get(*c).cloned().unwrap_or_default())
            .collect();
        push(level.join(", "), objects);
        done.extend(level);
    }
    push("autoscalers and policies".into(), last);
    Ok(waves)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::manifest::parse;

    fn object(kind: &str, name: &str, component: &str, depends: &str) -> String {
        let api = if matches!(kind, "Deployment" | "StatefulSet") {
            "apps/v1"
        } else {
            "v1"
        };
        format!(
            "apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n  labels: {{app.kubernetes.io/name: {component}}}\n  annotations: {{orchestrator/depends-on: \"{depends}\"}}\n---\n"
        )
    }

    fn waves_of(text: &str) -> anyhow::Result<Vec<(String, Vec<String>)>> {
        let objects = parse("t.yaml", text).unwrap();
        Ok(plan(objects, &BTreeSet::new())?
            .into_iter()
            .map(|w| (w.name, w.objects.iter().map(Manifest::key).collect()))
            .collect())
    }

    #[test]
    fn components_follow_their_dependencies() {
        let text = [
            object("HorizontalPodAutoscaler", "gw", "gw", ""),
            object("Deployment", "gw", "gw", "app"),
            object("Service", "gw", "gw", ""),
            object("StatefulSet", "db", "db", ""),
            object("Deployment", "app", "app", "db"),
            object("ConfigMap", "cfg", "config", ""),
            object("Namespace", "ns", "ns", ""),
        ]
        .concat();
        let waves = waves_of(&text).unwrap();
        let names: Vec<&str> = waves.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "namespace",
                "config",
                "db",
                "app",
                "gw",
                "autoscalers and policies"
            ]
        );
        assert_eq!(waves[4].1, ["Deployment/gw", "Service/gw"]);
    }

    #[test]
    fn the_shipped_stack_has_the_designed_waves() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        let waves = plan(
            crate::deploy::manifest::load(&dir).unwrap(),
            &BTreeSet::new(),
        )
        .unwrap();
        let names: Vec<&str> = waves.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "namespace",
                "config",
                "billing-db, inventory-db, rabbitmq",
                "billing-app, inventory-app",
                "api-gateway",
                "autoscalers and policies"
            ]
        );
    }

    #[test]
    fn unknown_dependency_and_cycles_are_errors() {
        let err = waves_of(&object("Deployment", "a", "a", "ghost"))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "a depends on ghost, which no manifest defines");
        let text = [
            object("Deployment", "a", "a", "b"),
            object("Deployment", "b", "b", "a"),
        ]
        .concat();
        let err = waves_of(&text).unwrap_err().to_string();
        assert_eq!(err, "the components a, b depend on each other in a cycle");
    }

    #[test]
    fn a_deployed_component_counts_as_in_place_and_a_ghost_still_does_not() {
        let objects = parse("t.yaml", &object("Deployment", "gw", "gw", "app")).unwrap();
        let deployed = BTreeSet::from(["app".to_string()]);
        let waves = plan(objects.clone(), &deployed).unwrap();
        let names: Vec<&str> = waves.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["gw"]);
        let ghost = BTreeSet::from(["other".to_string()]);
        let err = plan(objects, &ghost).unwrap_err().to_string();
        assert_eq!(err, "gw depends on app, which no manifest defines");
    }
}
