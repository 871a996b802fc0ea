//! The images the workloads run.

use std::collections::BTreeSet;

use super::{Live, Verdict, text};
use crate::deploy::manifest::Manifest;

/// Every workload image comes from the configured registry namespace.
pub(super) fn from_registry(live: &Live) -> Verdict {
    let (objects, registry) = (live.objects, live.registry);
    if registry.namespace.is_empty() {
        return Verdict::Skipped("registry.namespace is not set: set it in orchestrator.toml or DOCKERHUB_USERNAME to your Docker Hub user".into());
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
    Verdict::judged(
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
pub(super) fn qualified(image: &str) -> String {
    let first = image.split('/').next().unwrap_or_default();
    let has_registry =
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    match (has_registry, image.contains('/')) {
        (true, _) => image.to_string(),
        (false, true) => format!("docker.io/{image}"),
        (false, false) => format!("docker.io/library/{image}"),
    }
}
