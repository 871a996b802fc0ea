//! Building the images with `docker buildx`, concurrently, for the
//! platforms the nodes run: pushed by the build itself (`--push`, whose
//! digests are recorded in `.orchestrator/images.json` so that a later
//! `--skip-build` pins the same content), loaded into the local docker, or
//! kept in the build cache. Building returns the images it built; whatever
//! happens to them next (`super::super::sideload`) is the caller's.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use futures::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Image;
use super::platforms::{NodePlatforms, check_builder, check_platforms};
use crate::deploy::{Options, Project};
use crate::preflight::Builder;
use crate::process::{Command, Runner, Stdout};
use crate::reporter::{Reporter, Task};

/// What the images record (`.orchestrator/images.json`) keeps of a pushed reference.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Pushed {
    digest: String,
    platforms: Vec<String>,
}

fn read_record(record: &Path) -> BTreeMap<String, Pushed> {
    std::fs::read_to_string(record)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Sets what an earlier push recorded (digest, platforms) on the images that
/// come from a registry.
pub fn recall(images: &mut [Image], record: &Path) {
    let record = read_record(record);
    for image in images.iter_mut().filter(|i| !i.sideloaded) {
        if let Some(pushed) = record.get(&image.reference) {
            image.digest = Some(pushed.digest.clone());
            image.platforms.clone_from(&pushed.platforms);
        }
    }
}

/// How a build hands its image over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// Pushed to the registry by the build itself (`--push`).
    Push,
    /// Loaded into the local docker (`--load`): for sideloading, or to keep a
    /// single-platform build that is not pushed.
    Load,
    /// Kept in the build cache only: a multi-platform build that is not pushed.
    Cache,
}

/// Builds every image concurrently (unless `--skip-build`) for the
/// `--platform`s, else for the nodes' platforms: pushed to the registry (the
/// digests are recorded), loaded into the local docker for the nodes to import
/// (`registry.sideload`), or neither with `--skip-push`. An image the cluster
/// would get for the wrong platform is refused first. When one build fails the
/// others are dropped, which stops their processes. Returns the images built
/// now: every one, or none with `--skip-build`.
pub async fn build<'a>(
    images: &'a mut [Image],
    project: &Project<'_>,
    options: &Options,
    nodes: &NodePlatforms,
    builder: Option<&Builder>,
    runner: &Runner,
    reporter: &dyn Reporter,
) -> anyhow::Result<&'a [Image]> {
    let record_file = project.images_record();
    recall(images, &record_file);
    let sideload = project.config.registry.sideload;
    let platforms = if options.platforms.is_empty() {
        nodes.keys().cloned().collect()
    } else {
        options.platforms.clone()
    };
    let output = match (sideload, options.skip_push) {
        (true, _) => Output::Load,
        (false, false) => Output::Push,
        (false, true) if platforms.len() == 1 => Output::Load,
        (false, true) => Output::Cache,
    };
    if sideload && platforms.len() > 1 {
        bail!(
            "--sideload builds for one platform, but the cluster needs {}: push to a registry instead \
             (deploy without --sideload)",
            platforms.join(" and ")
        );
    }
    // What the cluster will run: this build's platforms when it reaches the
    // cluster, else what the record says of the image pushed earlier.
    let delivered = !options.skip_build && (sideload || output == Output::Push);
    if delivered {
        for image in images.iter_mut() {
            image.platforms.clone_from(&platforms);
        }
    }
    check_platforms(images, nodes)?;
    if options.skip_build {
        return Ok(&[]);
    }
    check_builder(builder, &platforms)?;
    let build = Build {
        project,
        runner,
        reporter,
        platforms: &platforms,
        output,
    };
    let jobs = images.iter().map(|image| build.run(image));
    let digests = try_join_all(jobs).await?;
    if output == Output::Push {
        let mut record = read_record(&record_file);
        // A push without a digest has failed already.
        for (image, digest) in images.iter_mut().zip(digests) {
            let Some(digest) = digest else { continue };
            record.insert(
                image.reference.clone(),
                Pushed {
                    digest: digest.clone(),
                    platforms: platforms.clone(),
                },
            );
            image.digest = Some(digest);
        }
        let text = serde_json::to_string_pretty(&record)?;
        crate::state::write_private(&record_file, text.as_bytes())?;
    }
    Ok(images)
}

/// One build of every image: where, for which platforms, handed over how.
struct Build<'a> {
    project: &'a Project<'a>,
    runner: &'a Runner,
    reporter: &'a dyn Reporter,
    platforms: &'a [String],
    output: Output,
}

impl Build<'_> {
    /// Builds (and, with `--push`, pushes) one image, reporting it as one
    /// task; returns the pushed digest.
    async fn run(&self, image: &Image) -> anyhow::Result<Option<String>> {
        let id = format!("image {}", image.name);
        let task = Task::start(self.reporter, &id, &id);
        let result = self.build(image, &id).await;
        let message = match &result {
            Ok(Some(digest)) => format!("pushed {}", short(digest)),
            Ok(None) => format!("built {}", image.reference),
            Err(_) => "failed".into(),
        };
        task.finish(result.is_ok(), &message);
        result
    }

    async fn build(&self, image: &Image, id: &str) -> anyhow::Result<Option<String>> {
        let state = self.project.state.dir();
        let metadata = state.join(format!("build-{}.json", image.name));
        let dockerfile = image.dockerfile.display().to_string();
        let platforms = self.platforms.join(",");
        let mut command = Command::new("docker")
            .args(["buildx", "build", "--platform", &platforms])
            .args(["-f", &dockerfile, "-t", &image.reference])
            .dir(self.project.dir);
        command = match self.output {
            Output::Push => command
                .arg("--push")
                .arg("--metadata-file")
                .arg(metadata.display().to_string()),
            Output::Load => command.arg("--load"),
            Output::Cache => command,
        };
        std::fs::create_dir_all(state)
            .with_context(|| format!("cannot create {}", state.display()))?;
        self.reporter.progress(
            id,
            &match self.output {
                Output::Push => format!("building for {platforms} and pushing"),
                _ => format!("building for {platforms}"),
            },
        );
        self.runner
            .run(
                &format!("build {}", image.name),
                command.arg("."),
                Stdout::Log,
            )
            .await?;
        if self.output != Output::Push {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&metadata).with_context(|| {
            format!("docker buildx wrote no metadata to {}", metadata.display())
        })?;
        let _ = std::fs::remove_file(&metadata);
        let digest = built_digest(&text).with_context(|| {
            format!(
                "docker buildx reported no pushed digest for {}",
                image.reference
            )
        })?;
        Ok(Some(digest))
    }
}

/// The image's digest in `docker buildx build --metadata-file`'s JSON (the
/// manifest list's, for a multi-platform build).
fn built_digest(metadata_json: &str) -> Option<String> {
    let metadata: Value = serde_json::from_str(metadata_json).ok()?;
    let digest = metadata.get("containerimage.digest")?.as_str()?;
    digest.starts_with("sha256:").then(|| digest.to_string())
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::images::tests::image;

    #[test]
    fn built_digest_is_read_from_the_build_metadata() {
        let metadata = r#"{"buildx.build.ref": "default/default/x", "containerimage.descriptor": {"mediaType": "application/vnd.oci.image.index.v1+json"}, "containerimage.digest": "sha256:4c1a", "image.name": "docker.io/student/api-gateway:abc"}"#;
        assert_eq!(built_digest(metadata).as_deref(), Some("sha256:4c1a"));
        assert_eq!(built_digest(r#"{"image.name": "x"}"#), None);
        assert_eq!(built_digest("not json"), None);
    }

    #[test]
    fn recorded_pushes_are_recalled() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("images.json");
        std::fs::write(
            &record,
            r#"{"docker.io/student/api-gateway:abc": {"digest": "sha256:1", "platforms": ["linux/arm64"]}}"#,
        )
        .unwrap();
        let mut images = [image("api-gateway", None), image("postgres", None)];
        recall(&mut images, &record);
        assert_eq!(images[0].pinned(), "docker.io/student/api-gateway@sha256:1");
        let mut local = images[0].clone();
        local.reference = "localhost:5000/sim/api-gateway:abc".into();
        assert_eq!(local.pinned(), "localhost:5000/sim/api-gateway@sha256:1");
        local.digest = None;
        assert_eq!(local.pinned(), "localhost:5000/sim/api-gateway:abc");
        assert_eq!(images[0].platforms, ["linux/arm64"]);
        assert_eq!(images[1].digest, None);
    }
}
