//! `dashboard`: the cluster and the stack on a local web page, live. A
//! [`Monitor`] keeps a [`Snapshot`] of what the page shows, read again whenever
//! a watch on the cluster reports a change (and every few seconds, for the
//! heartbeats' ages and to notice a lost connection), and each app's log tail
//! through [`crate::logs`]. [`server`] serves both, read-only, to the page.
//!
//! A lost connection keeps the last data on the page, marked stale with why;
//! the watches retry by themselves and the next good read clears the mark.

pub mod server;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, BoxStream};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use serde::Serialize;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::deploy::manifest::COMPONENT_LABEL;
use crate::logs;
use crate::stack::{self, Autoscaler, Workload};
use crate::stack::{COMPONENTS, Component};
use crate::state::State;
use crate::verify::Audit;

/// What the page shows, as one JSON document.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// "context NAME in FILE (SERVER)".
    pub cluster: String,
    pub namespace: String,
    /// The last read of the cluster succeeded.
    pub connected: bool,
    /// Why the last read failed; the data is then the last good read's.
    pub error: Option<String>,
    /// When the data was read (RFC 3339); absent before the first good read.
    pub updated_at: Option<String>,
    pub nodes: Vec<NodeRow>,
    pub workloads: Vec<Workload>,
    pub autoscalers: Vec<Autoscaler>,
    pub pods: Vec<PodRow>,
    pub gateway: Option<String>,
    /// The Secrets' names; their values are never read.
    pub secrets: Vec<String>,
    /// The last `verify` run, as `verify --json` prints it.
    pub verify: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRow {
    pub name: String,
    pub ready: bool,
    pub roles: Vec<String>,
    pub arch: String,
    /// Seconds since the kubelet last reported the Ready condition.
    pub heartbeat_age: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodRow {
    pub name: String,
    /// The component it belongs to (its `app.kubernetes.io/name` label).
    pub app: String,
    /// As kubectl's STATUS column: a waiting container's reason, else the phase.
    pub status: String,
    pub ready: bool,
    pub restarts: i32,
    pub node: String,
}

pub fn node_row(node: &Node, now: Timestamp) -> NodeRow {
    let summary = crate::nodes::summary(node);
    let status = node.status.as_ref();
    let arch = node
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get("kubernetes.io/arch").cloned())
        .or_else(|| {
            status
                .and_then(|s| s.node_info.as_ref())
                .map(|info| info.architecture.clone())
        })
        .unwrap_or_default();
    let heartbeat_age = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|time| now.duration_since(time.0).as_secs().max(0));
    NodeRow {
        name: summary.name,
        ready: summary.ready,
        roles: summary.roles,
        arch,
        heartbeat_age,
    }
}

pub fn pod_row(pod: &Pod) -> PodRow {
    let status = pod.status.as_ref();
    let containers = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let waiting = containers
        .iter()
        .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    let phase = status
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    let status_word = match (&pod.metadata.deletion_timestamp, waiting) {
        (Some(_), _) => "Terminating".to_string(),
        (None, Some(reason)) => reason,
        (None, None) => phase,
    };
    PodRow {
        name: pod.metadata.name.clone().unwrap_or_default(),
        app: pod
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(COMPONENT_LABEL).cloned())
            .unwrap_or_default(),
        status: status_word,
        ready: !containers.is_empty() && containers.iter().all(|c| c.ready),
        restarts: containers.iter().map(|c| c.restart_count).sum(),
        node: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
    }
}

/// Where the page's data comes from.
#[derive(Clone)]
pub struct Source {
    pub client: kube::Client,
    pub cluster: String,
    pub namespace: String,
    /// The last `verify` run's JSON ([`last_verify_file`]).
    pub verify_file: PathBuf,
}

/// How often the monitor reads again without a change reported, and how long
/// a log tail waits before it tries again.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub refresh: Duration,
    pub log_retry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            refresh: Duration::from_secs(5),
            log_retry: Duration::from_secs(2),
        }
    }
}

/// The cluster's part of the snapshot, read in one go.
async fn read(source: &Source, now: Timestamp) -> anyhow::Result<Snapshot> {
    let namespace = source.namespace.as_str();
    let nodes = Api::<Node>::all(source.client.clone());
    let pods = Api::<Pod>::namespaced(source.client.clone(), namespace);
    // Metadata only: the page shows the Secrets' names, and their values never leave the API server.
    let secrets = Api::<Secret>::namespaced(source.client.clone(), namespace);
    let list = ListParams::default();
    let (nodes, pods, secrets, stack) = tokio::try_join!(
        async { Ok::<_, anyhow::Error>(nodes.list(&list).await?) },
        async { Ok(pods.list(&list).await?) },
        async { Ok(secrets.list_metadata(&list).await?) },
        stack::status(&source.client, namespace),
    )?;
    let mut nodes: Vec<NodeRow> = nodes.items.iter().map(|n| node_row(n, now)).collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut pods: Vec<PodRow> = pods.items.iter().map(pod_row).collect();
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    let mut secrets: Vec<String> = secrets
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    secrets.sort();
    Ok(Snapshot {
        cluster: source.cluster.clone(),
        namespace: namespace.into(),
        connected: true,
        error: None,
        updated_at: Some(now.to_string()),
        nodes,
        workloads: stack.workloads,
        autoscalers: stack.autoscalers,
        pods,
        gateway: stack.gateway,
        secrets,
        verify: None,
    })
}

/// Reads everything again into `snapshot`; on failure keeps the last data and says why.
pub async fn refresh(source: &Source, snapshot: &mut Snapshot) {
    match read(source, Timestamp::now()).await {
        Ok(fresh) => *snapshot = fresh,
        Err(err) => {
            snapshot.cluster = source.cluster.clone();
            snapshot.namespace = source.namespace.clone();
            snapshot.connected = false;
            snapshot.error = Some(format!("{err:#}"));
        }
    }
    snapshot.verify = std::fs::read(&source.verify_file)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
}

/// Where `verify` keeps its last run for the dashboard.
pub fn last_verify_file(state: &State) -> PathBuf {
    state.dir().join("last-verify.json")
}

/// Keeps the audit as the dashboard's checklist.
pub fn record_verify(state: &State, audit: &Audit) -> anyhow::Result<()> {
    crate::state::write_private(&last_verify_file(state), &serde_json::to_vec(audit)?)
}

/// One item per change to any object the page shows (watch errors included:
/// the next read tells whether the cluster is gone).
fn changes(client: &kube::Client, namespace: &str) -> BoxStream<'static, ()> {
    // Metadata only: any change bumps the resourceVersion, and no Secret's value is sent.
    fn watch<K>(api: Api<PartialObjectMeta<K>>) -> BoxStream<'static, ()>
    where
        K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
    {
        watcher(api, watcher::Config::default())
            .default_backoff()
            .map(|_| ())
            .boxed()
    }
    let c = || client.clone();
    stream::select_all([
        watch(Api::<PartialObjectMeta<Node>>::all(c())),
        watch(Api::<PartialObjectMeta<Pod>>::namespaced(c(), namespace)),
        watch(Api::<PartialObjectMeta<Deployment>>::namespaced(
            c(),
            namespace,
        )),
        watch(Api::<PartialObjectMeta<StatefulSet>>::namespaced(
            c(),
            namespace,
        )),
        watch(Api::<PartialObjectMeta<HorizontalPodAutoscaler>>::namespaced(c(), namespace)),
        watch(Api::<PartialObjectMeta<Service>>::namespaced(
            c(),
            namespace,
        )),
        watch(Api::<PartialObjectMeta<Secret>>::namespaced(c(), namespace)),
    ])
    .boxed()
}

/// A change to one app's log tail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEvent {
    pub app: String,
    /// A new line, or none when the tail starts over (its pods changed).
    pub line: Option<String>,
}

/// The last lines of each app's log, and their changes as they happen.
#[derive(Clone)]
pub struct LogBook {
    tails: Arc<Mutex<BTreeMap<String, VecDeque<String>>>>,
    events: broadcast::Sender<LogEvent>,
    keep: usize,
}

impl LogBook {
    pub fn new(keep: usize) -> Self {
        LogBook {
            tails: Arc::default(),
            events: broadcast::channel(1024).0,
            keep,
        }
    }

    pub fn push(&self, app: &str, line: String) {
        let mut tails = self.tails.lock().unwrap();
        let tail = tails.entry(app.to_string()).or_default();
        if tail.len() == self.keep {
            tail.pop_front();
        }
        tail.push_back(line.clone());
        let _ = self.events.send(LogEvent {
            app: app.into(),
            line: Some(line),
        });
    }

    pub fn reset(&self, app: &str) {
        let mut tails = self.tails.lock().unwrap();
        tails.insert(app.to_string(), VecDeque::new());
        let _ = self.events.send(LogEvent {
            app: app.into(),
            line: None,
        });
    }

    /// Every tail now, and every change after it (nothing lost or seen twice between).
    pub fn subscribe(&self) -> (BTreeMap<String, Vec<String>>, broadcast::Receiver<LogEvent>) {
        let tails = self.tails.lock().unwrap();
        let now = tails
            .iter()
            .map(|(app, tail)| (app.clone(), tail.iter().cloned().collect()))
            .collect();
        (now, self.events.subscribe())
    }
}

/// The live data behind the page; its tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct Monitor {
    pub snapshot: watch::Receiver<Snapshot>,
    pub logs: LogBook,
    _tasks: Arc<Tasks>,
}

struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Monitor {
    /// Reads the cluster once, then keeps the snapshot and the log tails up to date.
    pub async fn start(source: Source, timing: Timing) -> Monitor {
        let mut first = Snapshot::default();
        refresh(&source, &mut first).await;
        let (sender, snapshot) = watch::channel(first);
        let logs = LogBook::new(200);
        let mut tasks = vec![tokio::spawn(keep_fresh(source.clone(), sender, timing))];
        for component in &COMPONENTS {
            tasks.push(tokio::spawn(tail(
                source.clone(),
                component,
                logs.clone(),
                snapshot.clone(),
                timing,
            )));
        }
        Monitor {
            snapshot,
            logs,
            _tasks: Arc::new(Tasks(tasks)),
        }
    }
}

#[cfg(test)]
impl Monitor {
    /// A monitor of no cluster: the test changes the snapshot and the tails itself.
    pub(crate) fn fixed(snapshot: Snapshot) -> (watch::Sender<Snapshot>, Monitor, LogBook) {
        let (sender, receiver) = watch::channel(snapshot);
        let logs = LogBook::new(200);
        let monitor = Monitor {
            snapshot: receiver,
            logs: logs.clone(),
            _tasks: Arc::new(Tasks(Vec::new())),
        };
        (sender, monitor, logs)
    }
}

/// Reads again on every reported change (a burst counts once), and at least every `timing.refresh`.
async fn keep_fresh(source: Source, sender: watch::Sender<Snapshot>, timing: Timing) {
    let mut changes = changes(&source.client, &source.namespace);
    loop {
        tokio::select! {
            () = tokio::time::sleep(timing.refresh) => {}
            _ = changes.next() => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                while let Some(Some(())) = changes.next().now_or_never() {}
            }
        }
        let mut snapshot = sender.borrow().clone();
        refresh(&source, &mut snapshot).await;
        sender.send_replace(snapshot);
    }
}

fn pods_of(snapshot: &Snapshot, app: &str) -> Vec<String> {
    snapshot
        .pods
        .iter()
        .filter(|p| p.app == app)
        .map(|p| p.name.clone())
        .collect()
}

/// Follows `app`'s log into the book; starts over when its pods change (a new
/// replica's lines are followed too) or the stream ends.
async fn tail(
    source: Source,
    component: &'static Component,
    book: LogBook,
    mut snapshots: watch::Receiver<Snapshot>,
    timing: Timing,
) {
    let app = component.name;
    let follow = logs::Options {
        follow: true,
        since_seconds: None,
    };
    loop {
        let pods = pods_of(&snapshots.borrow_and_update(), app);
        if !pods.is_empty()
            && let Ok(mut lines) =
                logs::lines(&source.client, &source.namespace, component, &follow).await
        {
            book.reset(app);
            loop {
                tokio::select! {
                    line = lines.next() => match line {
                        Some(Ok(line)) => book.push(app, line),
                        _ => break,
                    },
                    changed = snapshots.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if pods_of(&snapshots.borrow_and_update(), app) != pods {
                            break;
                        }
                    }
                }
            }
        }
        tokio::time::sleep(timing.log_retry).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_row_has_its_arch_and_heartbeat_age() {
        let node: Node = serde_yaml::from_str(
            "metadata:\n  name: agent\n  labels: {kubernetes.io/arch: arm64, node-role.kubernetes.io/worker: 'true'}\n\
             status:\n  conditions:\n  - {type: Ready, status: 'True', lastHeartbeatTime: '2026-01-01T00:00:00Z'}\n",
        )
        .unwrap();
        let now: Timestamp = "2026-01-01T00:00:42Z".parse().unwrap();
        assert_eq!(
            node_row(&node, now),
            NodeRow {
                name: "agent".into(),
                ready: true,
                roles: vec!["worker".into()],
                arch: "arm64".into(),
                heartbeat_age: Some(42),
            }
        );
    }

    #[test]
    fn a_pod_row_shows_a_waiting_reason_like_kubectl() {
        let pod: Pod = serde_yaml::from_str(
            "metadata: {name: api-gateway-1, labels: {app.kubernetes.io/name: api-gateway}}\n\
             spec: {nodeName: agent, containers: [{name: app}]}\n\
             status:\n  phase: Running\n  containerStatuses:\n  - {name: app, ready: false, restartCount: 3, image: x, imageID: '', \
             state: {waiting: {reason: CrashLoopBackOff}}}\n",
        )
        .unwrap();
        assert_eq!(
            pod_row(&pod),
            PodRow {
                name: "api-gateway-1".into(),
                app: "api-gateway".into(),
                status: "CrashLoopBackOff".into(),
                ready: false,
                restarts: 3,
                node: "agent".into(),
            }
        );
    }

    #[tokio::test]
    async fn a_lost_cluster_keeps_the_last_data_and_says_why() {
        // Nothing listens on port 1: the read fails at once.
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let source = Source {
            client: kube::Client::try_from(config).unwrap(),
            cluster: "context test".into(),
            namespace: "stack".into(),
            verify_file: PathBuf::from("/nonexistent/last-verify.json"),
        };
        let mut snapshot = Snapshot {
            connected: true,
            secrets: vec!["app-credentials".into()],
            ..Snapshot::default()
        };
        refresh(&source, &mut snapshot).await;
        assert!(!snapshot.connected);
        assert!(snapshot.error.is_some());
        assert_eq!(snapshot.secrets, ["app-credentials"]);
        assert_eq!(snapshot.cluster, "context test");
    }

    #[test]
    fn the_log_book_keeps_the_last_lines_and_hands_out_changes_after_them() {
        let book = LogBook::new(2);
        book.push("api-gateway", "one".into());
        book.push("api-gateway", "two".into());
        book.push("api-gateway", "three".into());
        let (now, mut changes) = book.subscribe();
        assert_eq!(now["api-gateway"], ["two", "three"]);
        book.reset("api-gateway");
        book.push("api-gateway", "four".into());
        assert_eq!(changes.try_recv().unwrap().line, None);
        assert_eq!(changes.try_recv().unwrap().line.as_deref(), Some("four"));
        assert_eq!(book.subscribe().0["api-gateway"], ["four"]);
    }
}
