//! The stack's images: one per `dockerfiles/NAME.Dockerfile`, built from the
//! project root, tagged with the sources' identity (the git commit, `-dirty`
//! with uncommitted changes, else a hash of the sources), pushed to the
//! user's Docker Hub namespace, and pinned by digest in the manifests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use futures::future::try_join_all;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::manifest::Manifest;
use crate::config::RegistryConfig;
use crate::error::Failure;
use crate::process::{Command, Runner, Stdout};
use crate::reporter::Reporter;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The bare name the manifests use, e.g. `inventory-app`.
    pub name: String,
    pub dockerfile: PathBuf,
    /// `docker.io/USER/NAME:TAG`.
    pub reference: String,
    /// `sha256:...` once pushed (or recorded by an earlier push of the same tag).
    pub digest: Option<String>,
}

impl Image {
    /// What the manifests get: the reference, pinned by digest when known.
    pub fn pinned(&self) -> String {
        match &self.digest {
            Some(digest) => format!("{}@{digest}", self.reference),
            None => self.reference.clone(),
        }
    }
}

/// The repository prefix of every image, e.g. `docker.io/student`.
pub fn repository(registry: &RegistryConfig) -> anyhow::Result<String> {
    if registry.namespace.is_empty() {
        return Err(Failure::Usage(
            "no Docker Hub namespace: set registry.namespace in orchestrator.toml or DOCKERHUB_USERNAME".into(),
        )
        .into());
    }
    Ok(format!("{}/{}", registry.server, registry.namespace))
}

/// One image per `*.Dockerfile` in `dir`, sorted by name.
pub fn discover(dir: &Path, repository: &str, tag: &str) -> anyhow::Result<Vec<Image>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the Dockerfiles directory {}", dir.display()))?;
    let mut images: Vec<Image> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let file = entry.file_name().to_string_lossy().into_owned();
            let name = file.strip_suffix(".Dockerfile")?.to_string();
            Some(Image {
                reference: format!("{repository}/{name}:{tag}"),
                dockerfile: entry.path(),
                digest: None,
                name,
            })
        })
        .collect();
    images.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(images)
}

/// The sources' identity: `COMMIT` or `COMMIT-dirty` in a git checkout, else
/// `src-HASH` of every file outside build output and local state. The
/// manifests are not what the images are built from: editing them does not
/// change the tag (and so does not restart every pod).
pub async fn source_tag(
    project_dir: &Path,
    manifests: &Path,
    runner: &Runner,
) -> anyhow::Result<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(project_dir.display().to_string())
            .args(args.iter().copied())
    };
    if let Ok(commit) = runner
        .run(
            "git commit",
            git(&["rev-parse", "--short=12", "HEAD"]),
            Stdout::Capture,
        )
        .await
    {
        let outside_manifests = format!(":(exclude){}", manifests.display());
        let changes = runner
            .run(
                "git status",
                git(&[
                    "status",
                    "--porcelain",
                    "--untracked-files=normal",
                    "--",
                    ".",
                    &outside_manifests,
                ]),
                Stdout::Capture,
            )
            .await?;
        let dirty = if changes.trim().is_empty() {
            ""
        } else {
            "-dirty"
        };
        return Ok(format!("{}{dirty}", commit.trim()));
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

/// Fails unless docker has credentials for the registry (in its config file,
/// or through a credential store it will ask).
pub fn check_logged_in(registry: &RegistryConfig) -> anyhow::Result<()> {
    let config_dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")));
    let file = config_dir.map(|dir| dir.join("config.json"));
    let config: Value = file
        .as_ref()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    let keys: &[&str] = if registry.server == "docker.io" {
        &[
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            "registry-1.docker.io",
        ]
    } else {
        &[registry.server.as_str()]
    };
    let known = |section: &str| {
        config
            .get(section)
            .and_then(Value::as_object)
            .is_some_and(|map| map.keys().any(|k| keys.contains(&k.as_str())))
    };
    if known("auths") || known("credHelpers") || config.get("credsStore").is_some() {
        return Ok(());
    }
    bail!(
        "docker is not logged in to {}: run `docker login -u {}` first (or deploy with --skip-push)",
        registry.server,
        registry.namespace
    )
}

/// Builds (unless `skip_build`) and pushes (unless `skip_push`) every image
/// concurrently; pushed digests are recorded in `record` and set on the images.
/// Skipping the push reuses a digest recorded for the same reference.
pub async fn publish(
    images: &mut [Image],
    project_dir: &Path,
    record: &Path,
    runner: &Runner,
    reporter: &dyn Reporter,
    skip_build: bool,
    skip_push: bool,
) -> anyhow::Result<()> {
    let mut digests = read_record(record);
    if !skip_build || !skip_push {
        let jobs = images.iter().map(|image| async move {
            let id = format!("image {}", image.name);
            reporter.started(&id, &id);
            let result = build_and_push(
                image,
                project_dir,
                runner,
                reporter,
                &id,
                skip_build,
                skip_push,
            )
            .await;
            match &result {
                Ok(Some(digest)) => {
                    reporter.finished(&id, true, &format!("pushed {}", short(digest)))
                }
                Ok(None) => reporter.finished(&id, true, &format!("built {}", image.reference)),
                Err(_) => reporter.finished(&id, false, "failed"),
            }
            result.map(|digest| (image.reference.clone(), digest))
        });
        for (reference, digest) in try_join_all(jobs).await? {
            if let Some(digest) = digest {
                digests.insert(reference, digest);
            }
        }
        if !skip_push {
            let text = serde_json::to_string_pretty(&digests)?;
            crate::state::write_private(record, text.as_bytes())?;
        }
    }
    for image in images.iter_mut() {
        image.digest = digests.get(&image.reference).cloned();
    }
    Ok(())
}

async fn build_and_push(
    image: &Image,
    project_dir: &Path,
    runner: &Runner,
    reporter: &dyn Reporter,
    id: &str,
    skip_build: bool,
    skip_push: bool,
) -> anyhow::Result<Option<String>> {
    let docker = |args: &[&str]| {
        Command::new("docker")
            .args(args.iter().copied())
            .dir(project_dir)
    };
    if !skip_build {
        reporter.progress(id, "building");
        let dockerfile = image.dockerfile.display().to_string();
        runner
            .run(
                &format!("build {}", image.name),
                docker(&["build", "-f", &dockerfile, "-t", &image.reference, "."]),
                Stdout::Log,
            )
            .await?;
    }
    if skip_push {
        return Ok(None);
    }
    reporter.progress(id, "pushing");
    runner
        .run(
            &format!("push {}", image.name),
            docker(&["push", &image.reference]),
            Stdout::Log,
        )
        .await?;
    let repo_digests = runner
        .run(
            &format!("inspect {}", image.name),
            docker(&[
                "image",
                "inspect",
                "--format",
                "{{json .RepoDigests}}",
                &image.reference,
            ]),
            Stdout::Capture,
        )
        .await?;
    let digest = pushed_digest(&repo_digests, &image.reference)
        .with_context(|| format!("docker reported no pushed digest for {}", image.reference))?;
    Ok(Some(digest))
}

/// The digest in `docker image inspect`'s RepoDigests for the reference's repository.
fn pushed_digest(repo_digests_json: &str, reference: &str) -> Option<String> {
    let repository = reference
        .rsplit_once(':')
        .map_or(reference, |(repo, _)| repo);
    // Docker drops the `docker.io/` prefix (and `library/`) in RepoDigests.
    let short_repository = repository.strip_prefix("docker.io/").unwrap_or(repository);
    let list: Vec<String> = serde_json::from_str(repo_digests_json.trim()).ok()?;
    list.iter().find_map(|entry| {
        let (repo, digest) = entry.split_once('@')?;
        (repo == repository || repo == short_repository).then(|| digest.to_string())
    })
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

fn read_record(record: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(record)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Points every container whose image is one of ours (by bare name) at the
/// published reference; other images are left as they are.
pub fn rewrite(manifest: &mut Manifest, images: &[Image]) {
    for container in manifest.containers_mut() {
        let Some(current) = container.get("image").and_then(Value::as_str) else {
            continue;
        };
        if let Some(image) = images.iter().find(|i| i.name == current) {
            container["image"] = Value::String(image.pinned());
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
                "docker.io/student/api-gateway:abc@sha256:1234",
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
        let images = discover(dir.path(), "docker.io/me", "t1").unwrap();
        let refs: Vec<&str> = images.iter().map(|i| i.reference.as_str()).collect();
        assert_eq!(refs, ["docker.io/me/a:t1", "docker.io/me/b:t1"]);
    }

    #[test]
    fn pushed_digest_matches_the_repository() {
        let json = r#"["other/x@sha256:aaa","student/api-gateway@sha256:bbb"]"#;
        assert_eq!(
            pushed_digest(json, "docker.io/student/api-gateway:abc").as_deref(),
            Some("sha256:bbb")
        );
        assert_eq!(
            pushed_digest("[]", "docker.io/student/api-gateway:abc"),
            None
        );
    }

    #[test]
    fn empty_namespace_is_a_usage_error() {
        let registry = RegistryConfig::default();
        let err = repository(&registry).unwrap_err();
        assert_eq!(crate::error::exit_code(&err), crate::error::exit::USAGE);
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
