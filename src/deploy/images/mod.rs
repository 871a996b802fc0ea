//! The stack's images: one per `dockerfiles/NAME.Dockerfile`, named after the
//! registry they go to (or `orchestrator.local` when sideloaded) and pinned
//! by digest in the manifests. What the nodes run is `platforms`; what the
//! tag says of the sources is `tag`; building (and pushing, which buildx does
//! as part of the build) is `build`. Importing into the nodes is not here:
//! `deploy` hands the built images to `super::sideload` afterwards, so this
//! module knows nothing of delivery to the VMs.

mod build;
mod platforms;
mod tag;

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

use super::manifest::Manifest;
use crate::config::RegistryConfig;
use crate::error::Failure;

pub use build::{build, recall};
pub use platforms::{NodePlatforms, cluster_platforms, parse_platforms};
pub use tag::source_tag;

/// The registry host of sideloaded images: a name no registry answers to, so
/// that nothing ever tries to pull them.
pub const LOCAL_REGISTRY: &str = "orchestrator.local";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The bare name the manifests use, e.g. `inventory-app`.
    pub name: String,
    pub dockerfile: PathBuf,
    /// `docker.io/USER/NAME:TAG`, or `orchestrator.local/NAME:TAG` when sideloaded.
    pub reference: String,
    /// `sha256:...` once pushed (or recorded by an earlier push of the same tag).
    pub digest: Option<String>,
    /// The platforms (`linux/arm64`) the cluster gets it for, when known.
    pub platforms: Vec<String>,
    /// Imported into the nodes by `deploy --sideload`: never pulled.
    pub sideloaded: bool,
}

impl Image {
    /// What the manifests get: the repository pinned by digest when known
    /// (`docker.io/student/postgres@sha256:...`), else the tagged reference.
    /// Not `NAME:TAG@DIGEST`: the tag changes with every commit, and a pod
    /// template that changes restarts its pods, so an image whose content did
    /// not change (the databases', the broker's) would restart on every
    /// deploy of an app's change.
    pub fn pinned(&self) -> String {
        match &self.digest {
            Some(digest) => format!("{}@{digest}", self.repository()),
            None => self.reference.clone(),
        }
    }

    /// The reference without its tag.
    fn repository(&self) -> &str {
        match self.reference.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => repository,
            _ => &self.reference,
        }
    }
}

/// Where the images go: a registry namespace, or the nodes themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// The prefix of every reference, e.g. `docker.io/student`.
    pub prefix: String,
    pub sideload: bool,
}

/// The repository of every image: `registry.server/registry.namespace`, or the
/// local name when sideloading (which needs no registry account).
pub fn repository(registry: &RegistryConfig) -> anyhow::Result<Repository> {
    if registry.sideload {
        return Ok(Repository {
            prefix: LOCAL_REGISTRY.into(),
            sideload: true,
        });
    }
    if registry.namespace.is_empty() {
        return Err(Failure::Usage(
            "no Docker Hub namespace: set registry.namespace in orchestrator.toml or DOCKERHUB_USERNAME \
             (or deploy with --sideload, which needs no registry)"
                .into(),
        )
        .into());
    }
    Ok(Repository {
        prefix: format!("{}/{}", registry.server, registry.namespace),
        sideload: false,
    })
}

/// One image per `*.Dockerfile` in `dir`, sorted by name.
pub fn discover(dir: &Path, repository: &Repository, tag: &str) -> anyhow::Result<Vec<Image>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the Dockerfiles directory {}", dir.display()))?;
    let mut images: Vec<Image> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let file = entry.file_name().to_string_lossy().into_owned();
            let name = file.strip_suffix(".Dockerfile")?.to_string();
            Some(Image {
                reference: format!("{}/{name}:{tag}", repository.prefix),
                dockerfile: entry.path(),
                digest: None,
                platforms: Vec::new(),
                sideloaded: repository.sideload,
                name,
            })
        })
        .collect();
    images.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(images)
}

/// Points every container whose image is one of ours (by bare name) at the
/// published reference (a sideloaded one is never pulled: it exists only in
/// the nodes' containerd); other images are left as they are.
pub fn rewrite(manifest: &mut Manifest, images: &[Image]) {
    for container in manifest.containers_mut() {
        let Some(current) = container.get("image").and_then(Value::as_str) else {
            continue;
        };
        if let Some(image) = images.iter().find(|i| i.name == current) {
            container["image"] = Value::String(image.pinned());
            if image.sideloaded {
                container["imagePullPolicy"] = Value::String("Never".into());
            }
        }
    }
}

/// The images a set of manifests uses, by bare name, among ours.
pub fn used_by<'a>(manifests: &[Manifest], images: &'a [Image]) -> Vec<&'a Image> {
    images
        .iter()
        .filter(|image| {
            manifests.iter().any(|m| {
                m.containers()
                    .iter()
                    .any(|c| c.get("image").and_then(Value::as_str) == Some(image.name.as_str()))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::manifest::parse;

    /// An image of `docker.io/student` tagged `abc`: the other modules' tests use it too.
    pub(super) fn image(name: &str, digest: Option<&str>) -> Image {
        Image {
            name: name.into(),
            dockerfile: format!("dockerfiles/{name}.Dockerfile").into(),
            reference: format!("docker.io/student/{name}:abc"),
            digest: digest.map(String::from),
            platforms: Vec::new(),
            sideloaded: false,
        }
    }

    #[test]
    fn only_our_bare_names_are_rewritten() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      initContainers: [{name: i, image: postgres}]\n      containers: [{name: a, image: api-gateway}, {name: b, image: busybox:1.36}]\n";
        let mut manifest = parse("d.yaml", text).unwrap().remove(0);
        let images = [
            image("api-gateway", Some("sha256:1234")),
            image("postgres", None),
        ];
        assert_eq!(used_by(std::slice::from_ref(&manifest), &images).len(), 2);
        rewrite(&mut manifest, &images);
        let found: Vec<&str> = manifest
            .containers()
            .iter()
            .filter_map(|c| c["image"].as_str())
            .collect();
        assert_eq!(
            found,
            [
                "docker.io/student/api-gateway@sha256:1234",
                "busybox:1.36",
                "docker.io/student/postgres:abc"
            ]
        );
    }

    #[test]
    fn dockerfiles_become_images() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.Dockerfile", "a.Dockerfile", "README.md"] {
            std::fs::write(dir.path().join(f), "FROM scratch\n").unwrap();
        }
        let registry = RegistryConfig {
            namespace: "me".into(),
            ..RegistryConfig::default()
        };
        let images = discover(dir.path(), &repository(&registry).unwrap(), "t1").unwrap();
        let refs: Vec<&str> = images.iter().map(|i| i.reference.as_str()).collect();
        assert_eq!(refs, ["docker.io/me/a:t1", "docker.io/me/b:t1"]);
        assert!(!images[0].sideloaded);
    }

    #[test]
    fn sideloaded_images_have_a_local_name_and_are_never_pulled() {
        let registry = RegistryConfig {
            sideload: true,
            ..RegistryConfig::default()
        };
        let repository = repository(&registry).expect("sideloading needs no namespace");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("api-gateway.Dockerfile"), "FROM scratch\n").unwrap();
        let images = discover(dir.path(), &repository, "t1").unwrap();
        assert_eq!(images[0].reference, "orchestrator.local/api-gateway:t1");
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      containers: [{name: a, image: api-gateway, imagePullPolicy: IfNotPresent}, {name: b, image: busybox}]\n";
        let mut manifest = parse("d.yaml", text).unwrap().remove(0);
        rewrite(&mut manifest, &images);
        let containers = manifest.containers();
        assert_eq!(containers[0]["image"], "orchestrator.local/api-gateway:t1");
        assert_eq!(containers[0]["imagePullPolicy"], "Never");
        assert_eq!(containers[1].get("imagePullPolicy"), None);
    }

    #[test]
    fn empty_namespace_is_a_usage_error() {
        let registry = RegistryConfig::default();
        let err = repository(&registry).unwrap_err();
        assert_eq!(crate::error::exit_code(&err), crate::error::exit::USAGE);
        assert!(err.to_string().contains("--sideload"), "{err}");
    }
}
