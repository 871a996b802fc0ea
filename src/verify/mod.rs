//! `verify`: the exercise's audit as one command. Every point an auditor
//! checks by hand becomes a [`Check`] that either passed, failed (with what is
//! wrong and what to do) or was skipped (with why), and always carries its
//! evidence: the object and field it read, the request and the status it got.
//!
//! The judging is pure ([`checks`]: one table of rules over the nodes, the
//! manifests and the live objects, the latter two both read as [`Manifest`]s);
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
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
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
    /// `pod/container: imageID`, the digests the kubelets report running.
    pub running: Vec<String>,
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
    let mut all = Vec::new();
    let cluster_version = target.client.apiserver_version().await;

    let cluster = async {
        let clock = Instant::now();
        let nodes = crate::nodes::list(target.client.clone())
            .await
            .map_err(|err| format!("cannot list the nodes: {err:#}"))?;
        Ok(timed(clock, checks::cluster(&nodes)))
    };
    all.extend(
        section(
            reporter,
            Section::Cluster,
            &checks::names(Section::Cluster),
            cluster,
        )
        .await,
    );

    let dir = target.manifests_dir.display().to_string();
    let files = async {
        let clock = Instant::now();
        let files = manifest::load(target.manifests_dir)
            .map_err(|err| format!("cannot read the manifests in {dir}: {err:#}"))?;
        Ok(timed(clock, checks::manifests(&files, &dir)))
    };
    all.extend(
        section(
            reporter,
            Section::Manifests,
            &checks::names(Section::Manifests),
            files,
        )
        .await,
    );

    let mut images = Vec::new();
    let objects = async {
        let clock = Instant::now();
        let objects = live_objects(target.client, namespace)
            .await
            .map_err(|err| format!("cannot list the objects in namespace {namespace}: {err:#}"))?;
        images = checks::images_in(&objects);
        let checks = checks::objects(&objects, namespace, &target.config.registry);
        Ok(timed(clock, checks))
    };
    all.extend(
        section(
            reporter,
            Section::Objects,
            &checks::names(Section::Objects),
            objects,
        )
        .await,
    );

    let gateway = match &target.gateway {
        Some(url) => Ok(url.trim_end_matches('/').to_string()),
        None => match crate::stack::gateway_url(target.client, namespace).await {
            Ok(Some(url)) => Ok(url),
            Ok(None) => Err(format!(
                "no LoadBalancer Service in namespace {namespace} has an address (is api-gateway deployed? \
                 `kubectl -n {namespace} get svc api-gateway`); or pass --gateway-url"
            )),
            Err(err) => Err(format!(
                "cannot read the Services of namespace {namespace}: {err}"
            )),
        },
    };
    let requests = async {
        Ok(api::run(
            gateway.as_deref().map_err(String::as_str),
            billing,
            reporter,
        )
        .await)
    };
    all.extend(section(reporter, Section::Api, &api::API_CHECKS, requests).await);

    Audit {
        tool: format!("orchestrator {}", env!("CARGO_PKG_VERSION")),
        started_at,
        cluster: target.cluster.to_string(),
        cluster_version: cluster_version
            .map_or_else(|err| format!("unknown ({err})"), |v| v.git_version),
        namespace: namespace.to_string(),
        gateway: gateway.ok(),
        images,
        running: running_images(target.client, namespace).await,
        manifests: hashes(target.manifests_dir),
        checks: all,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Runs a section's checks, or skips each of `names` with why its inputs
/// could not be read; its progress line ends with the tally.
async fn section(
    reporter: &dyn Reporter,
    section: Section,
    names: &[&str],
    checks: impl Future<Output = Result<Vec<Check>, String>>,
) -> Vec<Check> {
    let id = section.title();
    reporter.started(id, id);
    let checks = checks.await.unwrap_or_else(|why| {
        names
            .iter()
            .map(|name| Check::skipped(section, name, &why))
            .collect()
    });
    let failed = checks.iter().filter(|c| c.status != Status::Passed).count();
    let message = match failed {
        0 => format!("{} passed", checks.len()),
        n => format!("{n} of {} not passed", checks.len()),
    };
    reporter.finished(id, failed == 0, &message);
    checks
}

/// Checks judged together, each timed from `clock` (reading their inputs included).
fn timed(clock: Instant, checks: Vec<Check>) -> Vec<Check> {
    checks.into_iter().map(|c| c.took(clock)).collect()
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

/// `pod/container: imageID` of every container running in the namespace;
/// nothing when the pods cannot be listed (the object checks say why).
async fn running_images(client: &kube::Client, namespace: &str) -> Vec<String> {
    let Ok(pods) = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
    else {
        return Vec::new();
    };
    let mut lines: Vec<String> = pods
        .items
        .iter()
        .flat_map(|pod| {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let statuses = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.clone())
                .unwrap_or_default();
            statuses
                .into_iter()
                .map(move |c| format!("{name}/{}: {}", c.name, c.image_id))
        })
        .collect();
    lines.sort();
    lines
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
