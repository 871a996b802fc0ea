//! `deploy` and `plan`: from the manifests and the sources to a running stack.
//!
//! Everything that can be wrong locally (configuration, manifests, `--only`,
//! docker's login) is found before the cluster is touched; the cluster is
//! reached before anything is built; then images are published, Secrets made,
//! and the waves applied one after another, each gated on its workloads'
//! readiness; last, objects of ours no longer in the manifests are pruned.

pub mod addons;
pub mod applyset;
pub mod cluster;
pub mod images;
pub mod labels;
pub mod manifest;
pub mod readiness;
pub mod rollout;
pub mod secrets;
pub mod sideload;
pub mod waves;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::future::{join_all, try_join_all};
use serde_json::json;

use crate::config::Config;
use crate::error::Failure;
use crate::process::Runner;
use crate::reporter::Reporter;
use crate::state::State;
use addons::Addon;
use cluster::{Applier, Change};
use images::Image;
use manifest::Manifest;
use waves::Wave;

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub skip_build: bool,
    pub skip_push: bool,
    /// Only this component's objects (plus configuration); nothing is pruned.
    pub only: Option<String>,
    /// Per wave.
    pub timeout: Duration,
    /// `--platform`: build for these instead of the nodes' platforms.
    pub platforms: Vec<String>,
    /// `--with`: the extras deployed beside the stack.
    pub with: Vec<Addon>,
}

/// Where the inputs are.
pub struct Project<'a> {
    pub config: &'a Config,
    pub dir: &'a Path,
    pub state: &'a State,
}

impl Project<'_> {
    fn manifests_dir(&self) -> PathBuf {
        self.dir.join(&self.config.deploy.manifests)
    }

    fn images_record(&self) -> PathBuf {
        self.state.dir().join("images.json")
    }
}

/// What is to be deployed: the manifests (without Secrets) and our images
/// they use, tagged with the sources' identity. Built locally, before the
/// cluster is touched.
pub struct Release {
    manifests: Vec<Manifest>,
    images: Vec<Image>,
    /// With `--only`: the other components, taken as deployed already.
    deployed: BTreeSet<String>,
    /// The builder the images are built on, as the preflight found it.
    builder: Option<crate::preflight::Builder>,
}

pub async fn release(
    project: &Project<'_>,
    only: Option<&str>,
    with: &[Addon],
    runner: &Runner,
) -> anyhow::Result<Release> {
    let dir = project.manifests_dir();
    let mut manifests = manifest::load(&dir)
        .map_err(|err| Failure::Usage(format!("bad manifests in {}: {err:#}", dir.display())))?;
    if !manifests.iter().any(|m| m.kind == "Namespace") {
        manifests.insert(0, namespace_manifest());
    }
    // The stack's namespace is the configuration's, whatever the file calls it.
    let namespace = &project.config.deploy.namespace;
    for m in manifests.iter_mut().filter(|m| m.kind == "Namespace") {
        m.name.clone_from(namespace);
        m.body["metadata"]["name"] = serde_json::Value::String(namespace.clone());
    }
    let mut deployed = BTreeSet::new();
    if let Some(only) = only {
        let components: Vec<&str> = manifests
            .iter()
            .filter(|m| m.is_workload())
            .filter_map(Manifest::component)
            .collect();
        if !components.contains(&only) {
            return Err(Failure::Usage(format!(
                "--only {only}: no such component; the components are {}",
                components.join(", ")
            ))
            .into());
        }
        deployed = components
            .iter()
            .filter(|c| **c != only)
            .map(|c| c.to_string())
            .collect();
        manifests.retain(|m| is_shared(m) || m.component() == Some(only));
    }
    for addon in with {
        manifests.extend(addon.manifests(namespace)?);
    }
    let repository = images::repository(&project.config.registry)?;
    let tag = images::source_tag(project.dir, &dir, runner).await?;
    let all = images::discover(
        &project.dir.join(&project.config.deploy.dockerfiles),
        &repository,
        &tag,
    )?;
    let images = images::used_by(&manifests, &all)
        .into_iter()
        .cloned()
        .collect();
    Ok(Release {
        manifests,
        images,
        deployed,
        builder: None,
    })
}

/// Objects every component needs (namespace, configuration): kept by `--only`.
fn is_shared(manifest: &Manifest) -> bool {
    matches!(manifest.kind.as_str(), "Namespace" | "ConfigMap")
}

fn namespace_manifest() -> Manifest {
    Manifest {
        file: "(generated)".into(),
        api_version: "v1".into(),
        kind: "Namespace".into(),
        name: "namespace".into(),
        body: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "namespace"}}),
    }
}

/// The waves for the inputs: Secrets added, images rewritten. `plan` passes
/// `persist_credentials: false` so that it writes nothing.
fn waves_for(
    project: &Project<'_>,
    inputs: &Release,
    persist_credentials: bool,
) -> anyhow::Result<Vec<Wave>> {
    let required = secrets::required(&inputs.manifests);
    let keys = required.values().flatten().cloned().collect();
    let dotenv = project.dir.join(".env");
    let values = secrets::credentials(
        &keys,
        &dotenv,
        &project.state.credentials(),
        persist_credentials,
    )?;
    let mut objects = inputs.manifests.clone();
    for object in &mut objects {
        images::rewrite(object, &inputs.images);
    }
    objects.extend(secrets::objects(&required, &values));
    waves::plan(objects, &inputs.deployed)
}

/// What `plan` shows: each wave's objects with their change, the prunes, the images.
#[derive(Debug, serde::Serialize)]
pub struct Plan {
    /// Whether the stack's namespace exists: while it does not, its objects
    /// are all `create` and the server cannot check them yet.
    pub namespace_exists: bool,
    pub waves: Vec<PlannedWave>,
    pub prune: Vec<String>,
    pub images: Vec<String>,
    /// The nodes' platforms, the images' build targets (when they can be read).
    pub platforms: Vec<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct PlannedWave {
    pub name: String,
    pub objects: Vec<(String, Change)>,
}

/// Asks the server what each apply would change (server-side dry runs), touching nothing.
pub async fn plan(
    project: &Project<'_>,
    cluster: &Applier,
    only: Option<&str>,
    with: &[Addon],
    runner: &Runner,
) -> anyhow::Result<Plan> {
    let mut inputs = release(project, only, with, runner).await?;
    images::recall(&mut inputs.images, &project.images_record());
    let waves = waves_for(project, &inputs, false)?;
    let mut planned = Vec::new();
    for wave in &waves {
        let changes = try_join_all(
            wave.objects
                .iter()
                .map(|m| cluster.converge(m, true, Applier::patience())),
        )
        .await?;
        planned.push(PlannedWave {
            name: wave.name.clone(),
            objects: wave
                .objects
                .iter()
                .map(Manifest::key)
                .zip(changes)
                .collect(),
        });
    }
    let prune = match only {
        Some(_) => Vec::new(),
        None => {
            let all: Vec<Manifest> = waves.iter().flat_map(|w| w.objects.clone()).collect();
            cluster
                .orphans(&all)
                .await?
                .iter()
                .map(|o| format!("{}/{}", o.kind, o.name))
                .collect()
        }
    };
    let images = inputs.images.iter().map(Image::pinned).collect();
    let platforms = images::cluster_platforms(cluster.client(), &[])
        .await
        .map(|nodes| nodes.into_keys().collect())
        .unwrap_or_default();
    Ok(Plan {
        namespace_exists: cluster.namespace_exists().await?,
        waves: planned,
        prune,
        images,
        platforms,
    })
}

/// What a deploy did.
#[derive(Debug)]
pub struct Outcome {
    pub objects: usize,
    pub waves: usize,
    pub pruned: Vec<String>,
    pub gateway: Option<String>,
    pub elapsed: Duration,
}

/// The local checks and inputs of a deploy: docker's daemon, buildx and login
/// as far as they will be used (the preflight), manifests and images read.
pub async fn prepare(
    project: &Project<'_>,
    options: &Options,
    runner: &Runner,
) -> anyhow::Result<Release> {
    let docker = crate::preflight::Scope::Deploy {
        build: !options.skip_build,
        // Sideloaded images never reach a registry: no login needed.
        push: !options.skip_push && !project.config.registry.sideload,
    };
    // The Docker checks have nothing to warn about, only to fail.
    let report =
        crate::preflight::require(project.config, docker, &crate::reporter::Silent).await?;
    let mut release = release(project, options.only.as_deref(), &options.with, runner).await?;
    release.builder = report.builder;
    Ok(release)
}

pub async fn deploy(
    project: &Project<'_>,
    mut inputs: Release,
    cluster: &Applier,
    options: &Options,
    runner: &Runner,
    reporter: &dyn Reporter,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let nodes = images::cluster_platforms(cluster.client(), &options.platforms).await?;
    let built = images::build(
        &mut inputs.images,
        project,
        options,
        &nodes,
        inputs.builder.as_ref(),
        runner,
        reporter,
    )
    .await?;
    let local: Vec<sideload::LocalImage> = built
        .iter()
        .filter(|image| image.sideloaded)
        .map(|image| sideload::LocalImage {
            name: &image.name,
            reference: &image.reference,
        })
        .collect();
    sideload::import(&local, project, runner, reporter).await?;
    let waves = waves_for(project, &inputs, true)?;
    let all: Vec<Manifest> = waves.iter().flat_map(|w| w.objects.clone()).collect();
    let mut recorded = false;
    for (index, wave) in waves.iter().enumerate() {
        reporter.note(&format!(
            "wave {}/{}: {}",
            index + 1,
            waves.len(),
            wave.name
        ));
        // Every request of the wave, from its record and applies to its
        // waits, is retried until the wave's deadline: an API server away
        // longer than one request's patience is waited out if the wave's
        // timeout allows for it.
        let deadline = wave_deadline(options.timeout)?;
        // The record of what is applied lives in the namespace: written once
        // the namespace exists, before any object inside it.
        if !recorded && wave.objects.iter().any(|m| m.kind != "Namespace") {
            cluster.record_kinds(&all, false, deadline).await?;
            recorded = true;
        }
        roll_out(cluster, wave, deadline, reporter).await?;
    }
    let mut pruned = Vec::new();
    if options.only.is_none() {
        for orphan in cluster.orphans(&all).await? {
            let key = format!("{}/{}", orphan.kind, orphan.name);
            reporter.started(&key, &key);
            cluster.delete(&orphan).await?;
            reporter.finished(&key, true, Change::Prune.done());
            pruned.push(key);
        }
        cluster
            .record_kinds(&all, true, Applier::patience())
            .await?;
    }
    let gateway = crate::stack::gateway_url(cluster.client(), cluster.namespace())
        .await
        .ok()
        .flatten();
    Ok(Outcome {
        objects: waves.iter().map(|w| w.objects.len()).sum(),
        waves: waves.len(),
        pruned,
        gateway,
        elapsed: started.elapsed(),
    })
}

/// The deadline of a wave that starts now.
fn wave_deadline(timeout: Duration) -> anyhow::Result<tokio::time::Instant> {
    // `--timeout` and `deploy.timeout_secs` are bounded to a day; no timeout
    // may panic here all the same.
    tokio::time::Instant::now()
        .checked_add(timeout)
        .with_context(|| {
            format!(
                "a timeout of {}s is past the clock's end",
                timeout.as_secs()
            )
        })
}

/// Applies a wave's objects together, then waits for its workloads together,
/// all until `deadline`.
async fn roll_out(
    cluster: &Applier,
    wave: &Wave,
    deadline: tokio::time::Instant,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let applied = join_all(wave.objects.iter().map(|object| async move {
        let key = object.key();
        reporter.started(&key, &key);
        let result = cluster.converge(object, false, deadline).await;
        match (&result, object.is_workload()) {
            (Err(_), _) => reporter.finished(&key, false, "refused"),
            (Ok(change), true) => reporter.progress(&key, &format!("{}, waiting", change.done())),
            (Ok(change), false) => reporter.finished(&key, true, change.done()),
        }
        result
    }))
    .await;
    for result in applied {
        result?;
    }
    let waits = wave.workloads().map(|workload| async move {
        let key = workload.key();
        let result = cluster.wait_ready(workload, deadline, reporter).await;
        reporter.finished(
            &key,
            result.is_ok(),
            if result.is_ok() { "ready" } else { "not ready" },
        );
        result
    });
    try_join_all(waits)
        .await
        .map(|_| ())
        .context(format!("wave {} did not become ready", wave.name))
}
