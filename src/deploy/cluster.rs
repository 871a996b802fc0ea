//! The stack's objects on the API server: server-side apply with one field
//! manager, what an apply would change, the record of what was applied that
//! prune follows, and the watch-based wait for a workload with the diagnosis
//! of its pods.
//!
//! Every request is retried while the API server is briefly away (a restart,
//! a compacted watch), so a deploy outlives what a real control plane does.
//!
//! The record is an ApplySet (KEP-3659): a parent ConfigMap without data in
//! the stack's namespace lists the kinds ever applied, and every applied object
//! carries the parent's id in a label. Prune lists exactly those kinds for
//! objects with that label, so removing any manifest removes its objects, of
//! whatever kind, and nothing else is ever touched.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use anyhow::anyhow;
use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, Patch,
    PatchParams,
};
use kube::discovery::Scope;
use kube::error::DiscoveryError;
use kube::runtime::reflector::{self, Store};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;

use super::manifest::Manifest;
use super::readiness::{self, PodProblem, Readiness, Revision, Workload};
use crate::kubeapi::{Request, retrying};
use crate::reporter::Reporter;

/// The field manager of every apply, and the label value that marks our objects.
pub const MANAGER: &str = "orchestrator";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// The ApplySet parent's name, and KEP-3659's label and annotations.
pub const APPLYSET_PARENT: &str = "orchestrator-applyset";
const APPLYSET_ID: &str = "applyset.kubernetes.io/id";
const APPLYSET_PART_OF: &str = "applyset.kubernetes.io/part-of";
const APPLYSET_KINDS: &str = "applyset.kubernetes.io/contains-group-kinds";
const APPLYSET_TOOLING: &str = "applyset.kubernetes.io/tooling";

/// How long one request keeps retrying while the API server is away: an API
/// server restarts in seconds; longer is an outage worth reporting.
const PATIENCE: Duration = Duration::from_secs(30);

/// The pause before a broken watch is resumed: 200 ms, doubling up to 2 s, as
/// [`retrying`] pauses. kube's default grows to 30 s, so after an API server
/// restart of a minute a wait could stay blind until past its deadline.
#[derive(Debug)]
pub(crate) struct WatchBackoff(Duration);

impl WatchBackoff {
    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(2);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff(Self::FIRST)
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let pause = self.0;
        self.0 = (pause * 2).min(Self::MAX);
        Some(pause)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Create,
    Update,
    Unchanged,
    Prune,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Create => "create",
            Change::Update => "update",
            Change::Unchanged => "unchanged",
            Change::Prune => "prune",
        }
    }

    /// As a report of what was done.
    pub fn done(self) -> &'static str {
        match self {
            Change::Create => "created",
            Change::Update => "updated",
            Change::Unchanged => "unchanged",
            Change::Prune => "pruned",
        }
    }
}

/// An object of ours found live that the manifests no longer define.
#[derive(Debug, Clone)]
pub struct Orphan {
    pub kind: String,
    pub name: String,
    served: Served,
}

/// A kind the API server serves: its resource, and whether it is namespaced.
#[derive(Debug, Clone)]
struct Served {
    resource: ApiResource,
    namespaced: bool,
}

impl Served {
    /// The resource as RBAC names it: "deployments.apps", "services".
    fn rbac_name(&self) -> String {
        match self.resource.group.as_str() {
            "" => self.resource.plural.clone(),
            group => format!("{}.{group}", self.resource.plural),
        }
    }
}

/// `Kind.group` (`Kind` in the core group), as an ApplySet records kinds.
fn group_kind(api_version: &str, kind: &str) -> String {
    match api_version.split_once('/') {
        Some((group, _)) => format!("{kind}.{group}"),
        None => kind.to_string(),
    }
}

/// Whether a discovery failure means the API server does not serve the kind:
/// a 404, or an answer without it. Any other failure (forbidden, unavailable)
/// says nothing about it.
fn is_not_served(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => status.code == 404,
        kube::Error::Discovery(
            DiscoveryError::MissingApiGroup(_)
            | DiscoveryError::MissingKind(_)
            | DiscoveryError::MissingResource(_),
        ) => true,
        _ => false,
    }
}

/// The ApplySet id of a ConfigMap parent (KEP-3659):
/// `applyset-<base64url(sha256(<name>.<namespace>.<kind>.<group>))>-v1`.
fn applyset_id(namespace: &str) -> String {
    let digest = Sha256::digest(format!("{APPLYSET_PARENT}.{namespace}.ConfigMap."));
    format!(
        "applyset-{}-v1",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

pub struct Cluster {
    client: kube::Client,
    namespace: String,
    applyset: String,
    kinds: Mutex<HashMap<String, Served>>,
    namespace_exists: OnceCell<bool>,
}

impl Cluster {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Cluster {
            client,
            namespace: namespace.to_string(),
            applyset: applyset_id(namespace),
            kinds: Mutex::default(),
            namespace_exists: OnceCell::new(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    fn patience() -> Instant {
        Instant::now() + PATIENCE
    }

    fn request(&self, verb: &'static str, served: &Served, object: String) -> Request<'_> {
        Request {
            verb,
            resource: served.rbac_name(),
            namespace: served.namespaced.then_some(self.namespace.as_str()),
            object,
        }
    }

    /// The kind of a manifest as the server serves it (discovered once).
    async fn served(&self, api_version: &str, kind: &str) -> anyhow::Result<Served> {
        let key = format!("{api_version}/{kind}");
        if let Some(served) = self.kinds.lock().await.get(&key) {
            return Ok(served.clone());
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let found = retrying(Self::patience(), || {
            kube::discovery::pinned_kind(&self.client, &gvk)
        })
        .await;
        let (resource, capabilities) = match found {
            Ok(found) => found,
            Err(err) if is_not_served(&err) => {
                anyhow::bail!("the API server does not serve {kind} in {api_version}")
            }
            Err(err) => {
                return Err(discovery_failed(
                    err,
                    &format!("/{}", discovery_path(api_version)),
                ));
            }
        };
        let served = Served {
            resource,
            namespaced: capabilities.scope == Scope::Namespaced,
        };
        self.kinds.lock().await.insert(key, served.clone());
        Ok(served)
    }

    /// The kind an ApplySet recorded as `Kind.group`, if the server still
    /// serves it; a manifest's version is preferred, else the group's.
    async fn served_group_kind(
        &self,
        group_kind: &str,
        manifests: &[Manifest],
    ) -> anyhow::Result<Option<Served>> {
        if let Some(m) = manifests
            .iter()
            .find(|m| self::group_kind(&m.api_version, &m.kind) == group_kind)
        {
            return self.served(&m.api_version, &m.kind).await.map(Some);
        }
        let (kind, group) = group_kind.split_once('.').unwrap_or((group_kind, ""));
        let found = retrying(Self::patience(), || {
            kube::discovery::group(&self.client, group)
        })
        .await;
        match found {
            Ok(api_group) => {
                Ok(api_group
                    .recommended_kind(kind)
                    .map(|(resource, capabilities)| Served {
                        resource,
                        namespaced: capabilities.scope == Scope::Namespaced,
                    }))
            }
            Err(err) if is_not_served(&err) => Ok(None),
            Err(err) => Err(discovery_failed(
                err,
                if group.is_empty() { "/api" } else { "/apis" },
            )),
        }
    }

    fn api(&self, served: &Served) -> Api<DynamicObject> {
        if served.namespaced {
            Api::namespaced_with(self.client.clone(), &self.namespace, &served.resource)
        } else {
            Api::all_with(self.client.clone(), &served.resource)
        }
    }

    /// The body sent for a manifest: with our labels.
    fn prepared(&self, manifest: &Manifest) -> Value {
        let mut body = manifest.body.clone();
        let metadata = &mut body["metadata"];
        if !metadata["labels"].is_object() {
            metadata["labels"] = Value::Object(Default::default());
        }
        metadata["labels"][MANAGED_BY] = Value::String(MANAGER.into());
        metadata["labels"][APPLYSET_PART_OF] = Value::String(self.applyset.clone());
        body
    }

    /// Server-side apply; with `dry_run` the server validates and answers
    /// without storing anything.
    async fn apply(
        &self,
        manifest: &Manifest,
        served: &Served,
        dry_run: bool,
    ) -> anyhow::Result<DynamicObject> {
        let api = self.api(served);
        let mut params = PatchParams::apply(MANAGER).force();
        params.dry_run = dry_run;
        let body = Patch::Apply(self.prepared(manifest));
        retrying(Self::patience(), || {
            api.patch(&manifest.name, &params, &body)
        })
        .await
        .map_err(|err| {
            self.request("patch", served, described(manifest))
                .failed(err)
        })
    }

    /// Brings the object to the manifest: asks the server what an apply would
    /// change (a dry run, which also validates), and applies only when that is
    /// something, unless `dry_run`. An unchanged object is not written at all.
    ///
    /// A dry run of a namespaced object into a namespace that does not exist
    /// yet is refused by the server; it is a `Create`, and the kind is checked
    /// to be served.
    pub async fn converge(&self, manifest: &Manifest, dry_run: bool) -> anyhow::Result<Change> {
        let served = self.served(&manifest.api_version, &manifest.kind).await?;
        if dry_run && served.namespaced && !self.namespace_exists().await? {
            return Ok(Change::Create);
        }
        let api = self.api(&served);
        let live = retrying(Self::patience(), || api.get_opt(&manifest.name))
            .await
            .map_err(|err| {
                self.request("get", &served, described(manifest))
                    .failed(err)
            })?;
        let after = self.apply(manifest, &served, true).await?;
        let change = match live {
            None => Change::Create,
            Some(live) if comparable(&live) == comparable(&after) => Change::Unchanged,
            Some(_) => Change::Update,
        };
        if !dry_run && change != Change::Unchanged {
            self.apply(manifest, &served, false).await?;
        }
        Ok(change)
    }

    /// Whether the stack's namespace exists (asked once: for a plan).
    pub async fn namespace_exists(&self) -> anyhow::Result<bool> {
        self.namespace_exists
            .get_or_try_init(|| async {
                let served = self.served("v1", "Namespace").await?;
                let api = self.api(&served);
                let object = format!("Namespace/{}", self.namespace);
                retrying(Self::patience(), || api.get_opt(&self.namespace))
                    .await
                    .map(|found| found.is_some())
                    .map_err(|err| self.request("get", &served, object).failed(err))
            })
            .await
            .copied()
    }

    fn applyset_parents(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn applyset_request(&self, verb: &'static str) -> Request<'_> {
        Request {
            verb,
            resource: "configmaps".into(),
            namespace: Some(&self.namespace),
            object: format!("ConfigMap/{APPLYSET_PARENT} (the record of what was applied)"),
        }
    }

    /// The kinds the ApplySet records as applied (none before the first deploy).
    async fn recorded_kinds(&self) -> anyhow::Result<BTreeSet<String>> {
        let api = self.applyset_parents();
        let parent = retrying(Self::patience(), || api.get_opt(APPLYSET_PARENT))
            .await
            .map_err(|err| self.applyset_request("get").failed(err))?;
        Ok(parent
            .as_ref()
            .and_then(|p| p.metadata.annotations.as_ref())
            .and_then(|a| a.get(APPLYSET_KINDS))
            .map(|list| {
                list.split(',')
                    .filter(|k| !k.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Writes the ApplySet parent recording `kinds`, plus the recorded ones
    /// unless `replace`. Done before objects of a new kind are applied (so a
    /// deploy that stops half-way leaves none unrecorded) and, with `replace`,
    /// after a complete prune.
    pub async fn record_kinds(&self, manifests: &[Manifest], replace: bool) -> anyhow::Result<()> {
        let mut kinds: BTreeSet<String> = manifests
            .iter()
            .filter(|m| m.kind != "Namespace")
            .map(|m| group_kind(&m.api_version, &m.kind))
            .collect();
        if !replace {
            kinds.extend(self.recorded_kinds().await?);
        }
        let parent = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": APPLYSET_PARENT,
                "labels": {APPLYSET_ID: self.applyset},
                "annotations": {
                    APPLYSET_TOOLING: format!("{MANAGER}/{}", env!("CARGO_PKG_VERSION")),
                    APPLYSET_KINDS: kinds.into_iter().collect::<Vec<_>>().join(","),
                },
            },
        });
        let api = self.applyset_parents();
        let params = PatchParams::apply(MANAGER).force();
        let patch = Patch::Apply(parent);
        retrying(Self::patience(), || {
            api.patch(APPLYSET_PARENT, &params, &patch)
        })
        .await
        .map_err(|err| self.applyset_request("patch").failed(err))?;
        Ok(())
    }

    /// Objects of our ApplySet, of the kinds it records or the manifests
    /// have, that the manifests do not define. Namespaces are never pruned.
    pub async fn orphans(&self, manifests: &[Manifest]) -> anyhow::Result<Vec<Orphan>> {
        let mut kinds = self.recorded_kinds().await?;
        kinds.extend(
            manifests
                .iter()
                .map(|m| group_kind(&m.api_version, &m.kind)),
        );
        kinds.remove("Namespace");
        let selector = format!("{APPLYSET_PART_OF}={}", self.applyset);
        let lists = kinds.iter().map(|group_kind| {
            let selector = selector.clone();
            async move {
                let Some(served) = self.served_group_kind(group_kind, manifests).await? else {
                    return Ok(Vec::new()); // no longer served: no object of it can exist
                };
                let api = self.api(&served);
                let params = ListParams::default().labels(&selector);
                let kind = served.resource.kind.clone();
                let list = retrying(Self::patience(), || api.list_metadata(&params))
                    .await
                    .map_err(|err| {
                        self.request("list", &served, served.rbac_name())
                            .failed(err)
                    })?;
                Ok::<_, anyhow::Error>(
                    list.items
                        .into_iter()
                        .filter_map(|o| o.metadata.name)
                        .filter(|name| {
                            !manifests.iter().any(|m| {
                                self::group_kind(&m.api_version, &m.kind) == *group_kind
                                    && &m.name == name
                            })
                        })
                        .map(|name| Orphan {
                            kind: kind.clone(),
                            name,
                            served: served.clone(),
                        })
                        .collect(),
                )
            }
        });
        let found = futures::future::try_join_all(lists).await?;
        Ok(found.into_iter().flatten().collect())
    }

    pub async fn delete(&self, orphan: &Orphan) -> anyhow::Result<()> {
        let api = self.api(&orphan.served);
        let params = DeleteParams::background();
        match retrying(Self::patience(), || api.delete(&orphan.name, &params)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(err) => Err(self
                .request(
                    "delete",
                    &orphan.served,
                    format!("{}/{}", orphan.kind, orphan.name),
                )
                .failed(err)),
        }
    }

    /// Waits by watching until the workload is ready, a pod of its current
    /// revision is in a state waiting will not cure, or `deadline` passes.
    /// Pods of older revisions are not judged: they are on their way out. A
    /// broken watch (API server restart, 410 Gone) is resumed until the deadline.
    pub async fn wait_ready(
        &self,
        workload: &Manifest,
        deadline: Instant,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<()> {
        let key = workload.key();
        let selector = pod_selector(&workload.body)
            .ok_or_else(|| anyhow!("{key} has no spec.selector.matchLabels"))?;
        let name_field = format!("metadata.name={}", workload.name);
        let ns = &self.namespace;
        let (pods, writer) = reflector::store();
        let pod_events = reflector::reflector(
            writer,
            watcher(
                Api::<Pod>::namespaced(self.client.clone(), ns),
                watcher::Config::default().labels(&selector),
            )
            .backoff(WatchBackoff::default()),
        )
        .map_ok(|_| Observed::Pods);
        let config = watcher::Config::default().fields(&name_field);
        let workload_events = match workload.kind.as_str() {
            "Deployment" => watcher(
                Api::<Deployment>::namespaced(self.client.clone(), ns),
                config,
            )
            .backoff(WatchBackoff::default())
            .applied_objects()
            .map_ok(|d| Observed::Workload(Workload::Deployment(Box::new(d))))
            .boxed(),
            _ => watcher(
                Api::<StatefulSet>::namespaced(self.client.clone(), ns),
                config,
            )
            .backoff(WatchBackoff::default())
            .applied_objects()
            .map_ok(|s| Observed::Workload(Workload::StatefulSet(Box::new(s))))
            .boxed(),
        };
        let mut events = futures::stream::select(pod_events.boxed(), workload_events);
        let mut state = Readiness::Waiting("no status yet".into());
        let mut latest: Option<Workload> = None;
        let mut revision: Option<Revision> = None;
        let mut replaced: HashSet<String> = HashSet::new();
        let mut logs_read: HashSet<(String, i32)> = HashSet::new();
        loop {
            let event = match tokio::time::timeout_at(deadline, events.next()).await {
                Err(_) => {
                    return Err(self
                        .timeout_error(workload, &state, latest.as_ref(), &pods, revision.as_ref())
                        .await);
                }
                Ok(None) => return Err(anyhow!("the watch on {key} ended")),
                Ok(Some(Err(err))) => {
                    // The watcher resumes by itself, after a pause, relisting if needed.
                    reporter.progress(&key, &format!("watch interrupted, resuming: {err}"));
                    continue;
                }
                Ok(Some(Ok(event))) => event,
            };
            if let Observed::Workload(observed) = event {
                state = observed.readiness();
                revision = match &observed {
                    Workload::Deployment(d) => self.deployment_revision(d).await?,
                    Workload::StatefulSet(s) => readiness::stateful_set_revision(s),
                };
                latest = Some(observed);
            }
            match &state {
                Readiness::Ready => return Ok(()),
                Readiness::Failed(why) => return Err(anyhow!("{key}: {why}")),
                Readiness::Waiting(_) => {}
            }
            let Some(revision) = &revision else {
                continue; // the controller has not seen the new spec yet: no pod is judged
            };
            let judged = judged_pods(&pods, Some(revision));
            if let Some(why) = self.incurable(&key, &judged, &mut logs_read).await {
                return Err(anyhow!(why));
            }
            if !revision.replaces_old_pods_itself {
                for pod in pods.state() {
                    let stuck = !revision.owns(&pod)
                        && !readiness::pod_is_ready(&pod)
                        && pod.metadata.deletion_timestamp.is_none();
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    if stuck && replaced.insert(uid) {
                        let name = pod.metadata.name.clone().unwrap_or_default();
                        self.delete_pod(&name).await?;
                        reporter.note(&format!(
                            "{key}: deleted pod {name}: it is not Ready and runs an old revision, which \
                             a StatefulSet with OrderedReady never replaces by itself (Kubernetes' \
                             forced rollback); it comes back with the new revision"
                        ));
                    }
                }
            }
            if let Readiness::Waiting(message) = &state {
                let trouble = judged
                    .values()
                    .flatten()
                    .next()
                    .map(|problem| format!("; {}", problem.summary()))
                    .unwrap_or_default();
                reporter.progress(&key, &format!("waiting: {message}{trouble}"));
            }
        }
    }

    /// The first judged pod problem that waiting will not cure, explained. A
    /// crash loop below the restarts that make it fatal has its log read once
    /// per restart: an `exec format error` is fatal at once.
    async fn incurable(
        &self,
        key: &str,
        judged: &BTreeMap<String, Option<PodProblem>>,
        logs_read: &mut HashSet<(String, i32)>,
    ) -> Option<String> {
        for problem in judged.values().flatten() {
            if problem.is_fatal() {
                return Some(self.explained(problem, key).await);
            }
            if let PodProblem::CrashLoop {
                pod,
                container,
                restarts,
            } = problem
                && logs_read.insert((pod.clone(), *restarts))
            {
                let logs = self.last_logs(pod, container).await;
                if logs.as_deref().is_some_and(readiness::crash_log_is_fatal) {
                    return Some(problem.explain(key, logs.as_deref()));
                }
            }
        }
        None
    }

    /// The problem explained for `key`, with the crashed container's log for a crash loop.
    async fn explained(&self, problem: &PodProblem, key: &str) -> String {
        let logs = match problem {
            PodProblem::CrashLoop { pod, container, .. } => self.last_logs(pod, container).await,
            _ => None,
        };
        problem.explain(key, logs.as_deref())
    }

    /// The revision of a Deployment's pods: its new ReplicaSet's pod-template-hash.
    async fn deployment_revision(&self, d: &Deployment) -> anyhow::Result<Option<Revision>> {
        if !readiness::deployment_observed(d) {
            return Ok(None);
        }
        let selector = d
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.as_ref())
            .map(|labels| {
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &self.namespace);
        let params = ListParams::default().labels(&selector);
        let sets = retrying(Self::patience(), || api.list(&params))
            .await
            .map_err(|err| {
                Request {
                    verb: "list",
                    resource: "replicasets.apps".into(),
                    namespace: Some(&self.namespace),
                    object: "the ReplicaSets of a Deployment".into(),
                }
                .failed(err)
            })?;
        Ok(readiness::new_replica_set(d, &sets.items).and_then(Revision::of_replica_set))
    }

    async fn delete_pod(&self, name: &str) -> anyhow::Result<()> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let params = DeleteParams::default();
        match retrying(Self::patience(), || api.delete(name, &params)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(err) => Err(Request {
                verb: "delete",
                resource: "pods".into(),
                namespace: Some(&self.namespace),
                object: format!("Pod/{name}"),
            }
            .failed(err)),
        }
    }

    /// What a wait that ran out found: the workload's condition, and its pods
    /// of the current revision (`revision`; all of them while it is unknown) or why there are none.
    async fn timeout_error(
        &self,
        workload: &Manifest,
        state: &Readiness,
        latest: Option<&Workload>,
        pods: &Store<Pod>,
        revision: Option<&Revision>,
    ) -> anyhow::Error {
        let key = workload.key();
        let condition = match state {
            Readiness::Waiting(message) | Readiness::Failed(message) => message.as_str(),
            Readiness::Ready => "ready",
        };
        let judged = judged_pods(pods, revision);
        let found = match judged.values().flatten().next() {
            Some(problem) => self.explained(problem, &key).await,
            None if judged.is_empty() => {
                let mut old_pods: Vec<String> = pods
                    .state()
                    .iter()
                    .filter(|pod| revision.is_some_and(|r| !r.owns(pod)))
                    .filter_map(|pod| pod.metadata.name.clone())
                    .collect();
                old_pods.sort();
                match latest {
                    Some(latest) => latest.no_current_pod(&self.namespace, &old_pods),
                    None => "no pod was created for it".to_string(),
                }
            }
            None => format!(
                "its pods: {}",
                judged.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        };
        // An explanation ends its own sentence.
        let found = found.trim_end_matches('.');
        anyhow!(
            "{key} was not ready in time: {condition}; {found}. Raise --timeout if the VMs are slow, \
             or see `orchestrator logs {}`",
            workload.name
        )
        .context(format!("timed out waiting in namespace {}", self.namespace))
    }

    /// The end of a container's previous run's log, if the kubelet serves it:
    /// enough lines to reach back past a crash report to the line that says
    /// why ([`readiness::log_excerpt`] picks what is shown). Not bounded in
    /// bytes: `limitBytes` counts from the tail's start, so it would cut the end.
    async fn last_logs(&self, pod: &str, container: &str) -> Option<String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let params = LogParams {
            container: Some(container.into()),
            previous: true,
            tail_lines: Some(200),
            ..LogParams::default()
        };
        tokio::time::timeout(Duration::from_secs(5), pods.logs(pod, &params))
            .await
            .ok()?
            .ok()
    }
}

/// A manifest in words, for errors: "StatefulSet/inventory-db (inventory-db.yaml)".
fn described(manifest: &Manifest) -> String {
    format!("{} ({})", manifest.key(), manifest.file)
}

/// The discovery path of an API version: `api/v1`, `apis/apps/v1`.
fn discovery_path(api_version: &str) -> String {
    match api_version.contains('/') {
        true => format!("apis/{api_version}"),
        false => format!("api/{api_version}"),
    }
}

/// A failed discovery request (`url` as RBAC's nonResourceURLs name it).
fn discovery_failed(err: kube::Error, url: &str) -> anyhow::Error {
    Request {
        verb: "get",
        resource: url.to_string(),
        namespace: None,
        object: format!("the kinds the API server serves ({url})"),
    }
    .failed(err)
}

/// The pods to judge, by name, with what is wrong with each: those of the
/// current revision, or all of them while it is not known.
fn judged_pods(
    pods: &Store<Pod>,
    revision: Option<&Revision>,
) -> BTreeMap<String, Option<PodProblem>> {
    pods.state()
        .iter()
        .filter(|pod| revision.is_none_or(|r| r.owns(pod)))
        .map(|pod| {
            (
                pod.metadata.name.clone().unwrap_or_default(),
                readiness::pod_problem(pod),
            )
        })
        .collect()
}

enum Observed {
    /// The pods changed (the store has them).
    Pods,
    Workload(Workload),
}

/// `k=v,k=v` from a workload's `spec.selector.matchLabels`.
pub fn pod_selector(body: &Value) -> Option<String> {
    let labels = body.pointer("/spec/selector/matchLabels")?.as_object()?;
    let pairs: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect();
    (!pairs.is_empty()).then(|| pairs.join(","))
}

/// An object without what the server changes on every write.
fn comparable(object: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
            "selfLink",
        ] {
            metadata.remove(field);
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_comes_from_match_labels() {
        let body: Value =
            serde_json::json!({"spec": {"selector": {"matchLabels": {"a": "1", "b": "2"}}}});
        assert_eq!(pod_selector(&body).as_deref(), Some("a=1,b=2"));
        assert_eq!(pod_selector(&serde_json::json!({"spec": {}})), None);
    }

    #[test]
    fn a_broken_watch_is_resumed_within_two_seconds() {
        let mut backoff = WatchBackoff::default();
        let pauses: Vec<u64> = backoff
            .by_ref()
            .take(6)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(pauses, [200, 400, 800, 1600, 2000, 2000]);
        backoff.reset();
        assert_eq!(backoff.next(), Some(Duration::from_millis(200)));
    }

    #[test]
    fn volatile_fields_do_not_count_as_changes() {
        let a: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "resourceVersion": "1", "managedFields": [{"manager": "x"}]},
            "data": {"k": "v"}
        }))
        .unwrap();
        let mut b = a.clone();
        b.metadata.resource_version = Some("2".into());
        assert_eq!(comparable(&a), comparable(&b));
        b.data["data"]["k"] = Value::String("w".into());
        assert_ne!(comparable(&a), comparable(&b));
    }
}
