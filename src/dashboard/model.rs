//! What the page shows: the [`Snapshot`], built from what the watches hold
//! and from what is failing to feed it ([`Health`]). Pure: no I/O here.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::core::PartialObjectMeta;
use serde::Serialize;

use crate::deploy::labels::COMPONENT_LABEL;
use crate::stack::{Autoscaler, Stack, Workload};

/// What the page shows, as one JSON document.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// "context NAME in FILE (SERVER)".
    pub cluster: String,
    pub namespace: String,
    /// Nothing that feeds the page is failing.
    pub connected: bool,
    /// Why something failed; the data it feeds is then the last good data.
    pub error: Option<String>,
    /// When the data was last all read (RFC 3339); absent before the first time.
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

/// One thing that feeds the page: the probe of the API server, or a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Feed {
    /// First: when it fails, its error is the one shown.
    ApiServer,
    Nodes,
    Pods,
    Secrets,
    Deployments,
    StatefulSets,
    Autoscalers,
    Services,
}

/// A feed's news: its objects are whole (a list ended or one changed), or it failed and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub feed: Feed,
    pub outcome: Result<(), String>,
}

/// The feeds failing now, and why.
#[derive(Debug, Default, Clone)]
pub struct Health(BTreeMap<Feed, String>);

impl Health {
    pub fn note(&mut self, report: Report) {
        match report.outcome {
            Ok(()) => self.0.remove(&report.feed),
            Err(why) => self.0.insert(report.feed, why),
        };
    }

    /// Why the page is not live: the first failing feed's error.
    pub fn error(&self) -> Option<&str> {
        self.0.values().next().map(String::as_str)
    }
}

/// What the watches hold now (the last good data of a failing one), the stack as their objects make it.
pub struct Contents<'a> {
    pub nodes: &'a [Arc<Node>],
    pub pods: &'a [Arc<Pod>],
    pub secrets: &'a [Arc<PartialObjectMeta<Secret>>],
    pub stack: &'a Stack,
}

/// The cluster's part of the snapshot (its `cluster`, `namespace` and
/// `verify` are the monitor's); `updated_at` moves to `now` only while
/// nothing fails.
pub fn snapshot(
    contents: &Contents,
    health: &Health,
    updated_at: Option<String>,
    now: Timestamp,
) -> Snapshot {
    let error = health.error().map(str::to_string);
    let mut nodes: Vec<NodeRow> = contents.nodes.iter().map(|n| node_row(n, now)).collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut pods: Vec<PodRow> = contents.pods.iter().map(|p| pod_row(p)).collect();
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    let mut secrets: Vec<String> = contents
        .secrets
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    secrets.sort();
    let stack = contents.stack;
    Snapshot {
        connected: error.is_none(),
        updated_at: if error.is_none() {
            Some(now.to_string())
        } else {
            updated_at
        },
        error,
        nodes,
        workloads: stack.workloads.clone(),
        autoscalers: stack.autoscalers.clone(),
        pods,
        gateway: stack.gateway.clone(),
        secrets,
        ..Snapshot::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_row_has_its_arch_and_heartbeat_age() {
        let node: Node = serde_yaml_ng::from_str(
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
        let pod: Pod = serde_yaml_ng::from_str(
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

    fn object<K: serde::de::DeserializeOwned>(yaml: &str) -> Arc<K> {
        Arc::new(serde_yaml_ng::from_str(yaml).unwrap())
    }

    struct Stored {
        nodes: Vec<Arc<Node>>,
        pods: Vec<Arc<Pod>>,
        secrets: Vec<Arc<PartialObjectMeta<Secret>>>,
        stack: Stack,
    }

    /// A store's contents come in no particular order.
    fn stored() -> Stored {
        Stored {
            nodes: vec![
                object("metadata: {name: master}"),
                object("metadata: {name: agent}"),
            ],
            pods: vec![
                object("metadata: {name: rabbitmq-0}"),
                object("metadata: {name: billing-db-0}"),
            ],
            secrets: vec![
                object("metadata: {name: inventory-db-credentials}"),
                object("metadata: {name: billing-db-credentials}"),
            ],
            stack: Stack {
                namespace: "stack".into(),
                workloads: vec![Workload {
                    kind: "Deployment".into(),
                    name: "api-gateway".into(),
                    ready: 1,
                    desired: 2,
                }],
                missing: Vec::new(),
                autoscalers: Vec::new(),
                gateway: Some("http://10.0.0.10:3000".into()),
            },
        }
    }

    fn contents(stored: &Stored) -> Contents<'_> {
        Contents {
            nodes: &stored.nodes,
            pods: &stored.pods,
            secrets: &stored.secrets,
            stack: &stored.stack,
        }
    }

    #[test]
    fn the_snapshot_lists_the_stores_by_name_with_the_stack() {
        let stored = stored();
        let now: Timestamp = "2026-01-01T00:00:42Z".parse().unwrap();
        let snapshot = snapshot(&contents(&stored), &Health::default(), None, now);
        assert!(snapshot.connected);
        assert_eq!(snapshot.error, None);
        assert_eq!(snapshot.updated_at.as_deref(), Some("2026-01-01T00:00:42Z"));
        let nodes: Vec<&str> = snapshot.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(nodes, ["agent", "master"]);
        let pods: Vec<&str> = snapshot.pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(pods, ["billing-db-0", "rabbitmq-0"]);
        assert_eq!(
            snapshot.secrets,
            ["billing-db-credentials", "inventory-db-credentials"]
        );
        assert_eq!(snapshot.workloads, stored.stack.workloads);
        assert_eq!(snapshot.gateway, stored.stack.gateway);
    }

    #[test]
    fn a_lost_cluster_keeps_the_last_data_and_says_why() {
        let stored = stored();
        let mut health = Health::default();
        health.note(Report {
            feed: Feed::Pods,
            outcome: Err("connection refused".into()),
        });
        let before = Some("2026-01-01T00:00:00Z".to_string());
        let now: Timestamp = "2026-01-01T00:00:42Z".parse().unwrap();
        let lost = snapshot(&contents(&stored), &health, before.clone(), now);
        assert!(!lost.connected);
        assert_eq!(lost.error.as_deref(), Some("connection refused"));
        assert_eq!(lost.updated_at, before, "the data is the last good read's");
        assert_eq!(lost.secrets.len(), 2);
        assert_eq!(lost.workloads.len(), 1);

        health.note(Report {
            feed: Feed::Pods,
            outcome: Ok(()),
        });
        let live = snapshot(&contents(&stored), &health, before, now);
        assert!(live.connected);
        assert_eq!(live.error, None);
    }
}
