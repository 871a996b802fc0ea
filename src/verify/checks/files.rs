//! How the manifests are laid out in files.

use std::collections::{BTreeMap, BTreeSet};

use super::{Files, Verdict};
use crate::deploy::manifest::Manifest;
use crate::stack::COMPONENTS;

/// Each component in one file of its own, and no file shared by two.
pub(super) fn one_file_per_component(input: &Files) -> Verdict {
    let (files, dir) = (input.manifests, input.dir);
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
    Verdict::judged(
        evidence,
        problems,
        &format!(
            "keep each component's objects (workload, Service, autoscaler) in a file of its own in {dir}"
        ),
    )
}
