//! The watch-based wait for a workload, with the diagnosis of its pods: the
//! revision its pods must run, the old pods a StatefulSet never replaces by
//! itself (deleted), and what a wait that ran out found (with the crashed
//! container's last logs).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::anyhow;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::time::Instant;

use super::cluster::Applier;
use super::manifest::Manifest;
use super::readiness::{self, PodProblem, Readiness, Revision, Workload};
use crate::kubeapi::{Request, retrying, watch_backoff};
use crate::reporter::Reporter;

impl Applier {
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
            .backoff(watch_backoff()),
        )
        .map_ok(|_| Observed::Pods);
        let config = watcher::Config::default().fields(&name_field);
        let workload_events = match workload.kind.as_str() {
            "Deployment" => watcher(
                Api::<Deployment>::namespaced(self.client.clone(), ns),
                config,
            )
            .backoff(watch_backoff())
            .applied_objects()
            .map_ok(|d| Observed::Workload(Workload::Deployment(Box::new(d))))
            .boxed(),
            "StatefulSet" => watcher(
                Api::<StatefulSet>::namespaced(self.client.clone(), ns),
                config,
            )
            .backoff(watch_backoff())
            .applied_objects()
            .map_ok(|s| Observed::Workload(Workload::StatefulSet(Box::new(s))))
            .boxed(),
            // The deploy waits only for what `Manifest::is_workload` names, so
            // another kind here is a caller's mistake. An error rather than
            // "nothing to wait for": that would report ready an object whose
            // readiness nobody looked at.
            other => return Err(anyhow!("{key}: no readiness rule for a {other} to wait on")),
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
                    Workload::Deployment(d) => self.deployment_revision(d, deadline).await?,
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
                        self.delete_pod(&name, deadline).await?;
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
    async fn deployment_revision(
        &self,
        d: &Deployment,
        deadline: Instant,
    ) -> anyhow::Result<Option<Revision>> {
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
        let sets = retrying(deadline, || api.list(&params))
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

    async fn delete_pod(&self, name: &str, deadline: Instant) -> anyhow::Result<()> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let params = DeleteParams::default();
        match retrying(deadline, || api.delete(name, &params)).await {
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
}
