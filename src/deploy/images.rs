//! The stack's images: one per `dockerfiles/NAME.Dockerfile`, built from the
//! project root with `docker buildx` for exactly the platforms the cluster's
//! nodes run (`kubernetes.io/arch`), tagged with the sources' identity (the git
//! commit, `-dirty` with uncommitted changes, else a hash of the sources),
//! pushed to the user's Docker Hub namespace and pinned by digest in the
//! manifests — or, with `registry.sideload`, imported straight into every
//! node's containerd (see `sideload`). An image that lacks a node's platform is
//! refused before anything is built or applied: on the node it would only
//! crash-loop with `exec format error`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use futures::future::try_join_all;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::manifest::Manifest;
use super::{Options, Project};
use crate::config::RegistryConfig;
use crate::error::Failure;
use crate::preflight::{Builder, MULTI_PLATFORM_FIX};
use crate::process::{Command, Runner, Stdout};
use crate::reporter::Reporter;

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

/// The plain words for a sideloaded image that is not on its node
/// (`ErrImageNeverPull`: the kubelet may not pull it).
pub fn never_pulled_fix(reason: &str) -> Option<&'static str> {
    (reason == "ErrImageNeverPull").then_some(
        "The image was sideloaded (imagePullPolicy: Never) but that node does not have it: \
         run `orchestrator deploy --sideload` without --skip-build to import it into every node.",
    )
}

/// Each platform the nodes run (`linux/arm64`) and the nodes that run it.
pub type NodePlatforms = BTreeMap<String, Vec<String>>;

/// The nodes' platforms, from their `kubernetes.io/os` and `kubernetes.io/arch`
/// labels (the kubelet sets them), else from what the kubelet reports.
pub fn node_platforms(nodes: &[Node]) -> NodePlatforms {
    let mut platforms = NodePlatforms::new();
    for node in nodes {
        let label = |key: &str| {
            node.metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get(key))
                .cloned()
        };
        let info = node.status.as_ref().and_then(|s| s.node_info.as_ref());
        let arch = label("kubernetes.io/arch").or_else(|| info.map(|i| i.architecture.clone()));
        let os = label("kubernetes.io/os").or_else(|| info.map(|i| i.operating_system.clone()));
        let Some(arch) = arch.filter(|a| !a.is_empty()) else {
            continue;
        };
        let os = os
            .filter(|o| !o.is_empty())
            .unwrap_or_else(|| "linux".into());
        platforms
            .entry(format!("{os}/{arch}"))
            .or_default()
            .push(node.metadata.name.clone().unwrap_or_default());
    }
    platforms
}

/// The platforms of the cluster's nodes. When they cannot be read (a user
/// without the right to list nodes) but `--platform` names the platforms
/// (`given`), there is nothing to check them against: an empty map.
pub async fn cluster_platforms(
    client: &kube::Client,
    given: &[String],
) -> anyhow::Result<NodePlatforms> {
    let nodes = match Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(nodes) => nodes,
        Err(_) if !given.is_empty() => return Ok(NodePlatforms::new()),
        Err(err) => {
            return Err(anyhow::Error::new(err).context(
                "cannot list the cluster's nodes to learn their CPU architecture \
                 (name the platforms with --platform, e.g. --platform linux/amd64)",
            ));
        }
    };
    let platforms = node_platforms(&nodes.items);
    if platforms.is_empty() && given.is_empty() {
        bail!(
            "cannot tell the nodes' CPU architecture (no node has a kubernetes.io/arch label): \
             name it with --platform, e.g. --platform linux/amd64"
        );
    }
    Ok(platforms)
}

/// Checks `--platform` values (`os/arch` or `os/arch/variant`, as docker takes them).
pub fn parse_platforms(values: &[String]) -> anyhow::Result<Vec<String>> {
    let mut platforms: Vec<String> = Vec::new();
    for value in values.iter().flat_map(|v| v.split(',')).map(str::trim) {
        let parts: Vec<&str> = value.split('/').collect();
        let valid = (2..=3).contains(&parts.len())
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        if !valid {
            return Err(Failure::Usage(format!(
                "--platform {value:?} is not a platform such as linux/amd64 or linux/arm64"
            ))
            .into());
        }
        if !platforms.iter().any(|p| p == value) {
            platforms.push(value.to_string());
        }
    }
    Ok(platforms)
}

/// Fails, naming each image and node, when an image the cluster would get
/// lacks the platform of some node (images of unknown platforms pass).
pub fn check_platforms(images: &[Image], nodes: &NodePlatforms) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for image in images.iter().filter(|i| !i.platforms.is_empty()) {
        for (platform, names) in nodes {
            if !image.platforms.contains(platform) {
                problems.push(format!(
                    "{} is built for {}, but node {} runs {platform}",
                    image.reference,
                    image.platforms.join(", "),
                    names.join(", ")
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let all: Vec<&str> = nodes.keys().map(String::as_str).collect();
    bail!(
        "refusing images that would crash on the nodes with `exec format error` (nothing was applied):\n  {}\n  \
         Build for the nodes: deploy without --platform (it builds for the nodes' platforms), \
         or with --platform {}",
        problems.join("\n  "),
        all.join(",")
    )
}

/// Fails before anything is built when the build needs several platforms and
/// the builder holds one (Docker's default: "Multi-platform build is not
/// supported for the docker driver", after the other images started).
pub fn check_builder(builder: Option<&Builder>, platforms: &[String]) -> anyhow::Result<()> {
    match builder {
        Some(builder) if platforms.len() > 1 && !builder.multi_platform => Err(Failure::HostNotReady(format!(
            "the images must be built for {} at once, but docker's builder ({} driver) builds one \
             platform at a time; nothing was built.\n  Fix: {MULTI_PLATFORM_FIX}; or deploy to \
             nodes of one CPU",
            platforms.join(" and "),
            builder.driver
        ))
        .into()),
        _ => Ok(()),
    }
}

/// The plain words for a container whose log says `exec format error`: its
/// image was built for another CPU than its node's.
pub fn exec_format_fix(logs: &str) -> Option<String> {
    logs.contains("exec format error").then(|| {
        "Its image was built for another CPU than its node's (`exec format error`: e.g. an amd64 \
         image on arm64 VMs). Fix: run `orchestrator deploy` without --platform, which builds for \
         the nodes' architecture (`kubectl get nodes -L kubernetes.io/arch` shows it)."
            .to_string()
    })
}

/// The sources' identity: `COMMIT` in a clean git checkout, `COMMIT-dirty-HASH`
/// with uncommitted changes (HASH names them: the diff and the untracked
/// files, so `--skip-build` after further edits never takes an older dirty
/// build for this one), else `src-HASH` of every file outside build output
/// and local state. The manifests are not what the images are built from:
/// editing them does not change the tag (and so does not restart every pod).
pub async fn source_tag(
    project_dir: &Path,
    manifests: &Path,
    runner: &Runner,
) -> anyhow::Result<String> {
    let git = |step: &'static str, args: &[&str]| {
        let command = Command::new("git")
            .arg("-C")
            .arg(project_dir.display().to_string())
            .args(args.iter().copied());
        runner.run(step, command, Stdout::Capture)
    };
    if let Ok(commit) = git("git commit", &["rev-parse", "--short=12", "HEAD"]).await {
        let outside_manifests = format!(":(exclude){}", manifests.display());
        let sources = ["--", ".", outside_manifests.as_str()];
        let diff = git(
            "git diff",
            &[&["diff", "HEAD", "--binary", "--no-ext-diff"][..], &sources].concat(),
        )
        .await?;
        let untracked = git(
            "git ls-files",
            &[
                &["ls-files", "--others", "--exclude-standard"][..],
                &sources,
            ]
            .concat(),
        )
        .await?;
        let commit = commit.trim();
        if diff.is_empty() && untracked.trim().is_empty() {
            return Ok(commit.to_string());
        }
        let root = project_dir.to_path_buf();
        let hash = tokio::task::spawn_blocking(move || {
            let mut hasher = Sha256::new();
            hasher.update(diff.as_bytes());
            for file in untracked.lines().filter(|l| !l.is_empty()) {
                hasher.update(file.as_bytes());
                // A file gone since it was listed counts as empty.
                hasher.update(std::fs::read(root.join(file)).unwrap_or_default());
            }
            format!("{:x}", hasher.finalize())
        })
        .await?;
        return Ok(format!("{commit}-dirty-{}", &hash[..12]));
    }
    let (root, manifests) = (project_dir.to_path_buf(), manifests.to_path_buf());
    let hash = tokio::task::spawn_blocking(move || hash_tree(&root, &manifests)).await??;
    Ok(format!("src-{}", &hash[..12]))
}

const NOT_SOURCES: &[&str] = &["target", ".git", ".orchestrator", ".vagrant", ".env"];

fn hash_tree(root: &Path, skip: &Path) -> anyhow::Result<String> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if NOT_SOURCES.iter().any(|n| name == *n) || entry.path() == skip {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.strip_prefix(root)?.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&file)?);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

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
/// `--platform`s, else for the nodes' platforms, and delivers it: pushed to the
/// registry (the digests are recorded), imported into the nodes
/// (`registry.sideload`), or neither with `--skip-push`. An image the cluster
/// would get for the wrong platform is refused first. When one build fails the
/// others are dropped, which stops their processes.
#[allow(clippy::too_many_arguments)]
pub async fn publish(
    images: &mut [Image],
    project: &Project<'_>,
    options: &Options,
    nodes: &NodePlatforms,
    builder: Option<&Builder>,
    runner: &Runner,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
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
        return Ok(());
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
    Ok(())
}

/// One build of every image: where, for which platforms, delivered how.
struct Build<'a> {
    project: &'a Project<'a>,
    runner: &'a Runner,
    reporter: &'a dyn Reporter,
    platforms: &'a [String],
    output: Output,
}

impl Build<'_> {
    /// Builds and delivers one image, reporting it as one task; returns the
    /// pushed digest.
    async fn run(&self, image: &Image) -> anyhow::Result<Option<String>> {
        let id = format!("image {}", image.name);
        let mut task = Task::start(self.reporter, &id);
        let result = self.build(image, &id).await;
        let message = match &result {
            Ok(Some(digest)) => format!("pushed {}", short(digest)),
            Ok(None) if image.sideloaded => format!("imported {}", image.reference),
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
        if image.sideloaded {
            super::sideload::import(image, self.project, self.runner, self.reporter, id).await?;
        }
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

/// A task on the reporter that is reported as cancelled if dropped unfinished
/// (a sibling build failed and `try_join_all` dropped this one).
struct Task<'a> {
    reporter: &'a dyn Reporter,
    id: &'a str,
    finished: bool,
}

impl<'a> Task<'a> {
    fn start(reporter: &'a dyn Reporter, id: &'a str) -> Self {
        reporter.started(id, id);
        Task {
            reporter,
            id,
            finished: false,
        }
    }

    fn finish(&mut self, ok: bool, message: &str) {
        self.reporter.finished(self.id, ok, message);
        self.finished = true;
    }
}

impl Drop for Task<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.reporter.finished(self.id, false, "cancelled");
        }
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

    fn image(name: &str, digest: Option<&str>) -> Image {
        Image {
            name: name.into(),
            dockerfile: format!("dockerfiles/{name}.Dockerfile").into(),
            reference: format!("docker.io/student/{name}:abc"),
            digest: digest.map(String::from),
            platforms: Vec::new(),
            sideloaded: false,
        }
    }

    fn node(name: &str, labels: &str, info_arch: &str) -> Node {
        serde_yaml::from_str(&format!(
            "metadata: {{name: {name}, labels: {{{labels}}}}}\nstatus:\n  nodeInfo: {{architecture: '{info_arch}', operatingSystem: linux, bootID: '', containerRuntimeVersion: '', kernelVersion: '', kubeProxyVersion: '', kubeletVersion: '', machineID: '', osImage: '', systemUUID: ''}}"
        ))
        .unwrap()
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
    fn node_platforms_come_from_the_arch_labels() {
        let nodes = [
            node(
                "master",
                "kubernetes.io/arch: arm64, kubernetes.io/os: linux",
                "arm64",
            ),
            node("agent", "kubernetes.io/arch: arm64", "arm64"),
            node("agent-2", "", "amd64"),
            node("unknown", "", ""),
        ];
        let platforms = node_platforms(&nodes);
        assert_eq!(
            platforms,
            NodePlatforms::from([
                ("linux/amd64".into(), vec!["agent-2".into()]),
                ("linux/arm64".into(), vec!["master".into(), "agent".into()]),
            ])
        );
    }

    #[test]
    fn an_image_lacking_a_node_platform_is_refused_naming_both() {
        let nodes = NodePlatforms::from([(
            "linux/arm64".to_string(),
            vec!["master".to_string(), "agent".to_string()],
        )]);
        let mut amd64 = image("api-gateway", None);
        amd64.platforms = vec!["linux/amd64".into()];
        let err = check_platforms(std::slice::from_ref(&amd64), &nodes)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("docker.io/student/api-gateway:abc is built for linux/amd64, but node master, agent runs linux/arm64"),
            "{err}"
        );
        assert!(err.contains("--platform linux/arm64"), "{err}");
        let mut both = amd64.clone();
        both.platforms.push("linux/arm64".into());
        check_platforms(&[both], &nodes).unwrap();
        // Nothing known of the image (not built now, never pushed): not refused.
        check_platforms(&[image("api-gateway", None)], &nodes).unwrap();
    }

    #[test]
    fn platform_flags_are_checked() {
        let given = [
            "linux/amd64,linux/arm64".to_string(),
            "linux/arm/v7".into(),
            "linux/amd64".into(),
        ];
        assert_eq!(
            parse_platforms(&given).unwrap(),
            ["linux/amd64", "linux/arm64", "linux/arm/v7"]
        );
        for bad in ["arm64", "linux/", "Linux/AMD64", "linux/amd64/v2/x"] {
            let err = parse_platforms(&[bad.to_string()]).unwrap_err();
            assert_eq!(
                crate::error::exit_code(&err),
                crate::error::exit::USAGE,
                "{bad}"
            );
            assert!(err.to_string().contains("linux/arm64"), "{err}");
        }
    }

    #[test]
    fn a_builder_of_one_platform_is_refused_a_multi_platform_build() {
        let docker = Builder {
            driver: "docker".into(),
            multi_platform: false,
        };
        let both = ["linux/amd64".to_string(), "linux/arm64".to_string()];
        let err = check_builder(Some(&docker), &both).unwrap_err();
        assert_eq!(
            crate::error::exit_code(&err),
            crate::error::exit::HOST_NOT_READY
        );
        let text = err.to_string();
        assert!(
            text.contains("linux/amd64 and linux/arm64 at once")
                && text.contains("docker driver")
                && text.contains("docker buildx create")
                && text.contains("containerd-snapshotter"),
            "{text}"
        );
        check_builder(Some(&docker), &both[..1]).unwrap();
        let container = Builder {
            driver: "docker-container".into(),
            multi_platform: true,
        };
        check_builder(Some(&container), &both).unwrap();
        check_builder(None, &both).unwrap();
    }

    #[test]
    fn exec_format_error_is_explained_as_the_wrong_cpu() {
        let fix = exec_format_fix("exec /usr/local/bin/app: exec format error").unwrap();
        assert!(
            fix.contains("another CPU") && fix.contains("--platform"),
            "{fix}"
        );
        assert_eq!(
            exec_format_fix("FATAL: password authentication failed"),
            None
        );
    }

    #[test]
    fn a_sideloaded_image_missing_on_its_node_is_explained() {
        let pod: k8s_openapi::api::core::v1::Pod = serde_yaml::from_str(
            "metadata: {name: gw-1}\nstatus:\n  containerStatuses:\n  - {name: c, image: 'orchestrator.local/api-gateway:t', imageID: '', ready: false, restartCount: 0, state: {waiting: {reason: ErrImageNeverPull, message: 'Container image is not present with pull policy of Never'}}}",
        )
        .unwrap();
        let problem = crate::deploy::readiness::pod_problem(&pod).expect("a problem");
        let text = problem.explain("Deployment/api-gateway", None);
        assert!(
            text.contains(
                "cannot pull its image orchestrator.local/api-gateway:t: ErrImageNeverPull"
            ),
            "{text}"
        );
        assert!(
            text.contains("deploy --sideload` without --skip-build"),
            "{text}"
        );
        assert!(!text.contains("Docker Hub"), "{text}");
    }

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

    #[test]
    fn empty_namespace_is_a_usage_error() {
        let registry = RegistryConfig::default();
        let err = repository(&registry).unwrap_err();
        assert_eq!(crate::error::exit_code(&err), crate::error::exit::USAGE);
        assert!(err.to_string().contains("--sideload"), "{err}");
    }

    #[tokio::test]
    async fn a_dirty_tag_names_the_uncommitted_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let git = |args: &[&str]| {
            let status = std::process::Command::new("git")
                .arg("-C")
                .arg(root)
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .output()
                .unwrap();
            assert!(status.status.success(), "git {args:?}: {status:?}");
        };
        git(&["init", "-q"]);
        std::fs::write(root.join("a.rs"), "one").unwrap();
        std::fs::write(root.join(".gitignore"), ".orchestrator/\n").unwrap();
        std::fs::create_dir(root.join("manifests")).unwrap();
        std::fs::write(root.join("manifests/x.yaml"), "kind: A").unwrap();
        git(&["add", "."]);
        git(&["commit", "-qm", "first"]);
        let runner = Runner::new(root.join(".orchestrator/logs"));
        let manifests = root.join("manifests");
        let tag = || source_tag(root, &manifests, &runner);
        let clean = tag().await.unwrap();
        assert_eq!(clean.len(), 12, "{clean}");
        // Manifests are not sources.
        std::fs::write(root.join("manifests/x.yaml"), "kind: B").unwrap();
        assert_eq!(tag().await.unwrap(), clean);

        std::fs::write(root.join("a.rs"), "two").unwrap();
        let edited = tag().await.unwrap();
        assert!(edited.starts_with(&format!("{clean}-dirty-")), "{edited}");
        assert_eq!(
            tag().await.unwrap(),
            edited,
            "the same changes, the same tag"
        );
        std::fs::write(root.join("a.rs"), "three").unwrap();
        let edited_again = tag().await.unwrap();
        assert_ne!(edited_again, edited);
        std::fs::write(root.join("new.rs"), "x").unwrap();
        let with_new_file = tag().await.unwrap();
        assert_ne!(with_new_file, edited_again);
        std::fs::write(root.join("new.rs"), "y").unwrap();
        assert_ne!(
            tag().await.unwrap(),
            with_new_file,
            "an untracked file's content counts"
        );
    }

    #[test]
    fn content_hash_ignores_build_output_and_manifests() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.rs"), "x").unwrap();
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        let first = hash_tree(dir.path(), &manifests).unwrap();
        std::fs::create_dir(dir.path().join("target")).unwrap();
        std::fs::write(dir.path().join("target/out"), "y").unwrap();
        std::fs::write(manifests.join("a.yaml"), "kind: A").unwrap();
        assert_eq!(hash_tree(dir.path(), &manifests).unwrap(), first);
        std::fs::write(dir.path().join("a.rs"), "z").unwrap();
        assert_ne!(hash_tree(dir.path(), &manifests).unwrap(), first);
    }
}
