//! The stack's objects on the API server: server-side apply with one field
//! manager, what an apply would change, the objects to prune, and the
//! watch-based wait for a workload with the diagnosis of its pods.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, anyhow};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, Patch,
    PatchParams,
};
use kube::discovery::Scope;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::manifest::Manifest;
use super::readiness::{self, PodProblem, Readiness};

/// The field manager of every apply, and the label value that marks our objects.
pub const MANAGER: &str = "orchestrator";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// Kinds searched for objects to prune besides those in the manifests.
const PRUNABLE: &[(&str, &str)] = &[
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("autoscaling/v1", "HorizontalPodAutoscaler"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
];

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

pub struct Cluster {
    client: kube::Client,
    namespace: String,
    resources: Mutex<HashMap<(String, String), (ApiResource, bool)>>,
}

impl Cluster {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Cluster {
            client,
            namespace: namespace.to_string(),
            resources: Mutex::default(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The API of a kind (discovered once), and whether it is namespaced.
    async fn api(
        &self,
        api_version: &str,
        kind: &str,
    ) -> anyhow::Result<(Api<DynamicObject>, bool)> {
        let key = (api_version.to_string(), kind.to_string());
        let mut cache = self.resources.lock().await;
        if !cache.contains_key(&key) {
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let (resource, capabilities) = kube::discovery::pinned_kind(&self.client, &gvk)
                .await
                .with_context(|| {
                format!("the API server does not serve {kind} in {api_version}")
            })?;
            cache.insert(
                key.clone(),
                (resource, capabilities.scope == Scope::Namespaced),
            );
        }
        let (resource, namespaced) = cache[&key].clone();
        let api = if namespaced {
            Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
        } else {
            Api::all_with(self.client.clone(), &resource)
        };
        Ok((api, namespaced))
    }

    /// The body sent for a manifest: with our label.
    fn prepared(&self, manifest: &Manifest) -> Value {
        let mut body = manifest.body.clone();
        let metadata = &mut body["metadata"];
        if !metadata["labels"].is_object() {
            metadata["labels"] = Value::Object(Default::default());
        }
        metadata["labels"][MANAGED_BY] = Value::String(MANAGER.into());
        body
    }

    /// Server-side apply; with `dry_run` the server validates and answers
    /// without storing anything.
    async fn apply(&self, manifest: &Manifest, dry_run: bool) -> anyhow::Result<DynamicObject> {
        let (api, _) = self.api(&manifest.api_version, &manifest.kind).await?;
        let mut params = PatchParams::apply(MANAGER).force();
        params.dry_run = dry_run;
        api.patch(
            &manifest.name,
            &params,
            &Patch::Apply(self.prepared(manifest)),
        )
        .await
        .with_context(|| {
            format!(
                "{} ({}) was refused by the API server",
                manifest.key(),
                manifest.file
            )
        })
    }

    /// Brings the object to the manifest: asks the server what an apply would
    /// change (a dry run, which also validates), and applies only when that is
    /// something, unless `dry_run`. An unchanged object is not written at all.
    pub async fn converge(&self, manifest: &Manifest, dry_run: bool) -> anyhow::Result<Change> {
        let (api, _) = self.api(&manifest.api_version, &manifest.kind).await?;
        let live = api.get_opt(&manifest.name).await?;
        let after = self.apply(manifest, true).await?;
        let change = match live {
            None => Change::Create,
            Some(live) if comparable(&live) == comparable(&after) => Change::Unchanged,
            Some(_) => Change::Update,
        };
        if !dry_run && change != Change::Unchanged {
            self.apply(manifest, false).await?;
        }
        Ok(change)
    }

    /// Objects carrying our label, of the manifests' kinds and the usual ones,
    /// that `keep` does not name (as `Kind/name`).
    pub async fn orphans(&self, manifests: &[Manifest]) -> anyhow::Result<Vec<Orphan>> {
        let mut kinds: BTreeMap<(String, String), ()> = PRUNABLE
            .iter()
            .map(|(v, k)| ((v.to_string(), k.to_string()), ()))
            .collect();
        for m in manifests.iter().filter(|m| m.kind != "Namespace") {
            kinds.insert((m.api_version.clone(), m.kind.clone()), ());
        }
        let selector = format!("{MANAGED_BY}={MANAGER}");
        let lists = kinds.keys().map(|(api_version, kind)| {
            let selector = selector.clone();
            async move {
                let Ok((api, true)) = self.api(api_version, kind).await else {
                    return Ok(Vec::new()); // not served here, or not namespaced: nothing to prune
                };
                let list = api
                    .list_metadata(&ListParams::default().labels(&selector))
                    .await?;
                Ok::<_, anyhow::Error>(
                    list.items
                        .into_iter()
                        .filter_map(|o| o.metadata.name)
                        .filter(|name| {
                            !manifests.iter().any(|m| &m.kind == kind && &m.name == name)
                        })
                        .map(|name| Orphan {
                            api_version: api_version.clone(),
                            kind: kind.clone(),
                            name,
                        })
                        .collect(),
                )
            }
        });
        let found = futures::future::try_join_all(lists).await?;
        Ok(found.into_iter().flatten().collect())
    }

    pub async fn delete(&self, orphan: &Orphan) -> anyhow::Result<()> {
        let (api, _) = self.api(&orphan.api_version, &orphan.kind).await?;
        match api.delete(&orphan.name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(err) => {
                Err(err).with_context(|| format!("cannot prune {}/{}", orphan.kind, orphan.name))
            }
        }
    }

    /// Waits by watching until the workload is ready, a pod of it is in a state
    /// waiting will not cure, or `deadline` passes. `progress` hears each change.
    pub async fn wait_ready(
        &self,
        workload: &Manifest,
        deadline: Instant,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> anyhow::Result<()> {
        let selector = pod_selector(&workload.body)
            .ok_or_else(|| anyhow!("{} has no spec.selector.matchLabels", workload.key()))?;
        let name_field = format!("metadata.name={}", workload.name);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let pod_events = watcher(pods, watcher::Config::default().labels(&selector))
            .default_backoff()
            .applied_objects()
            .map_ok(|pod| {
                Observed::Pod(
                    pod.metadata.name.clone().unwrap_or_default(),
                    readiness::pod_problem(&pod),
                )
            });
        let ns = &self.namespace;
        let workload_events = match workload.kind.as_str() {
            "Deployment" => watcher(
                Api::<Deployment>::namespaced(self.client.clone(), ns),
                watcher::Config::default().fields(&name_field),
            )
            .default_backoff()
            .applied_objects()
            .map_ok(|d| Observed::Workload(readiness::deployment(&d)))
            .boxed(),
            _ => watcher(
                Api::<StatefulSet>::namespaced(self.client.clone(), ns),
                watcher::Config::default().fields(&name_field),
            )
            .default_backoff()
            .applied_objects()
            .map_ok(|s| Observed::Workload(readiness::stateful_set(&s)))
            .boxed(),
        };
        let mut events = futures::stream::select(pod_events.boxed(), workload_events);
        let mut state = Readiness::Waiting("no status yet".into());
        let mut problems: BTreeMap<String, Option<PodProblem>> = BTreeMap::new();
        loop {
            let event = match tokio::time::timeout_at(deadline, events.next()).await {
                Err(_) => return Err(self.timeout_error(workload, &state, &problems)),
                Ok(None) => return Err(anyhow!("the watch on {} ended", workload.key())),
                Ok(Some(Err(err))) => return Err(anyhow!("watching {}: {err}", workload.key())),
                Ok(Some(Ok(event))) => event,
            };
            match event {
                Observed::Workload(now) => {
                    if let Readiness::Waiting(message) = &now {
                        progress(&format!("waiting: {message}"));
                    }
                    state = now;
                }
                Observed::Pod(name, problem) => {
                    problems.insert(name, problem);
                }
            }
            if let Some(problem) = problems.values().flatten().find(|p| p.is_fatal()) {
                let logs = match problem {
                    PodProblem::CrashLoop { pod, container, .. } => {
                        self.last_logs(pod, container).await
                    }
                    _ => None,
                };
                return Err(anyhow!(problem.explain(&workload.key(), logs.as_deref())));
            }
            match &state {
                Readiness::Ready => return Ok(()),
                Readiness::Failed(why) => return Err(anyhow!("{}: {why}", workload.key())),
                Readiness::Waiting(_) => {}
            }
        }
    }

    fn timeout_error(
        &self,
        workload: &Manifest,
        state: &Readiness,
        problems: &BTreeMap<String, Option<PodProblem>>,
    ) -> anyhow::Error {
        let condition = match state {
            Readiness::Waiting(message) | Readiness::Failed(message) => message.as_str(),
            Readiness::Ready => "ready",
        };
        let pods = match problems.values().flatten().next() {
            Some(problem) => problem.explain(&workload.key(), None),
            None if problems.is_empty() => "no pod was created for it".to_string(),
            None => format!(
                "its pods: {}",
                problems.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        };
        anyhow!(
            "{} was not ready in time: {condition}; {pods}. Raise --timeout if the VMs are slow, \
             or see `orchestrator logs {}`",
            workload.key(),
            workload.name
        )
        .context(format!("timed out waiting in namespace {}", self.namespace))
    }

    /// The last lines of a container's previous run, if the kubelet serves them.
    async fn last_logs(&self, pod: &str, container: &str) -> Option<String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let params = LogParams {
            container: Some(container.into()),
            previous: true,
            tail_lines: Some(15),
            ..LogParams::default()
        };
        tokio::time::timeout(Duration::from_secs(5), pods.logs(pod, &params))
            .await
            .ok()?
            .ok()
    }
}

enum Observed {
    /// A pod's name and what, if anything, is wrong with it.
    Pod(String, Option<PodProblem>),
    Workload(Readiness),
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
