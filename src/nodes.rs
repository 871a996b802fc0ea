//! Node readiness as a pure function of the Node object, and waiting for a set
//! of nodes by watching them and their leases (no polling): the wait ends the
//! moment the last one is Ready *now*, or at the deadline with each laggard
//! and its conditions.
//!
//! "Now" matters: after a halt, a Node keeps `Ready=True` until the node
//! controller's grace period runs out, so a node counts only with a heartbeat
//! newer than the wait's `since` — its Ready condition's, or its Lease's, which
//! a kubelet renews every 10 s while it posts an unchanged status only every
//! few minutes.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use serde::Serialize;

use crate::error::Failure;

/// Label prefix K3s (like kubeadm) uses for a node's roles.
const ROLE_LABEL: &str = "node-role.kubernetes.io/";

/// A node as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeSummary {
    pub name: String,
    pub roles: Vec<String>,
    pub ready: bool,
    pub version: String,
}

/// Whether the node's `Ready` condition is `True`.
pub fn is_ready(node: &Node) -> bool {
    conditions(node).any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The node's conditions in words, e.g. `Ready=False (KubeletNotReady: ...)`.
pub fn describe_conditions(node: &Node) -> String {
    let parts: Vec<String> = conditions(node)
        .map(|c| {
            let why = match (c.reason.as_deref(), c.message.as_deref()) {
                (Some(reason), Some(message)) if !message.is_empty() => {
                    format!(" ({reason}: {message})")
                }
                (Some(reason), _) => format!(" ({reason})"),
                (None, Some(message)) => format!(" ({message})"),
                (None, None) => String::new(),
            };
            format!("{}={}{why}", c.type_, c.status)
        })
        .collect();
    if parts.is_empty() {
        "no conditions reported yet".into()
    } else {
        parts.join("; ")
    }
}

pub fn summary(node: &Node) -> NodeSummary {
    let mut roles: Vec<String> = node
        .metadata
        .labels
        .iter()
        .flatten()
        .filter_map(|(key, _)| key.strip_prefix(ROLE_LABEL))
        .filter(|role| !role.is_empty())
        .map(str::to_string)
        .collect();
    roles.sort();
    NodeSummary {
        name: node.metadata.name.clone().unwrap_or_default(),
        roles,
        ready: is_ready(node),
        version: node
            .status
            .as_ref()
            .and_then(|s| s.node_info.as_ref())
            .map(|info| info.kubelet_version.clone())
            .unwrap_or_default(),
    }
}

/// When the node's kubelet last said it is Ready (the condition's heartbeat).
fn ready_heartbeat(node: &Node) -> Option<Timestamp> {
    conditions(node)
        .find(|c| c.type_ == "Ready")
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|time| time.0)
}

fn conditions(node: &Node) -> impl Iterator<Item = &k8s_openapi::api::core::v1::NodeCondition> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
}

/// Every node of the cluster, by name.
pub async fn list(client: kube::Client) -> anyhow::Result<Vec<NodeSummary>> {
    let nodes = Api::<Node>::all(client)
        .list(&ListParams::default())
        .await?;
    let mut nodes: Vec<NodeSummary> = nodes.items.iter().map(summary).collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nodes)
}

/// The nodes of a wait as last seen: Node objects and their leases' renewals.
#[derive(Debug, Default)]
struct Seen {
    nodes: BTreeMap<String, Node>,
    renewed: BTreeMap<String, Timestamp>,
}

impl Seen {
    /// Ready, with a heartbeat at or after `since`.
    fn ready_since(&self, name: &str, since: Timestamp) -> bool {
        self.nodes.get(name).is_some_and(|node| {
            let heartbeat = ready_heartbeat(node).max(self.renewed.get(name).copied());
            is_ready(node) && heartbeat.is_some_and(|at| at >= since)
        })
    }

    /// Why `name` does not count, in words (`None` when it does).
    fn why_not(&self, name: &str, since: Timestamp) -> Option<String> {
        let node = match self.nodes.get(name) {
            None => return Some("not registered (its K3s agent has not joined)".into()),
            Some(_) if self.ready_since(name, since) => return None,
            Some(node) => node,
        };
        if !is_ready(node) {
            return Some(describe_conditions(node));
        }
        let last = ready_heartbeat(node).max(self.renewed.get(name).copied());
        Some(match last {
            Some(at) => format!(
                "Ready=True is stale: no heartbeat since {} (before this command started), so its kubelet is not running",
                at.round(jiff::Unit::Second).unwrap_or(at)
            ),
            None => "Ready=True without any heartbeat".into(),
        })
    }
}

/// A change seen by one of the wait's two watches.
enum Change {
    Nodes(Box<watcher::Event<Node>>),
    /// A node's lease was renewed at that time.
    Renewed(String, Timestamp),
}

/// Waits until every node in `names` is Ready with a heartbeat at or after
/// `since`, calling `progress(ready, total)` whenever that count changes. On
/// timeout the error ([`NotReady`]) names each node that does not count and
/// why; if the API never answered, it is an unreachable-cluster failure.
pub async fn wait_ready(
    client: kube::Client,
    names: &[String],
    since: Timestamp,
    timeout: Duration,
    progress: impl Fn(usize, usize),
) -> anyhow::Result<()> {
    let nodes = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .backoff(Retry::default())
        .map(|event| event.map(|event| Change::Nodes(Box::new(event))));
    let leases = watcher(
        Api::<Lease>::namespaced(client, "kube-node-lease"),
        watcher::Config::default(),
    )
    .backoff(Retry::default())
    .applied_objects()
    .filter_map(|lease| async move {
        match lease {
            Ok(lease) => {
                let at = lease.spec?.renew_time?.0;
                Some(Ok(Change::Renewed(lease.metadata.name?, at)))
            }
            Err(err) => Some(Err(err)),
        }
    });
    let mut stream = std::pin::pin!(futures::stream::select(nodes, leases));
    let deadline = tokio::time::sleep(timeout);
    let mut deadline = std::pin::pin!(deadline);
    let mut seen = Seen::default();
    let mut listing: BTreeMap<String, Node> = BTreeMap::new();
    let mut listed = false;
    let mut last_error = None;
    let mut last_count = None;
    loop {
        let change = tokio::select! {
            () = &mut deadline => return Err(timed_out(names, &seen, since, listed, last_error, timeout)),
            change = stream.next() => change,
        };
        match change {
            None => anyhow::bail!("the watch on the cluster's nodes ended unexpectedly"),
            Some(Err(err)) => {
                last_error = Some(err.to_string());
                continue;
            }
            Some(Ok(Change::Renewed(name, at))) => {
                seen.renewed.insert(name, at);
            }
            Some(Ok(Change::Nodes(event))) => match *event {
                watcher::Event::Init => listing.clear(),
                watcher::Event::InitApply(node) => {
                    listing.insert(node.metadata.name.clone().unwrap_or_default(), node);
                    continue;
                }
                watcher::Event::InitDone => {
                    seen.nodes = std::mem::take(&mut listing);
                    listed = true;
                }
                watcher::Event::Apply(node) => {
                    seen.nodes
                        .insert(node.metadata.name.clone().unwrap_or_default(), node);
                }
                watcher::Event::Delete(node) => {
                    seen.nodes
                        .remove(node.metadata.name.as_deref().unwrap_or_default());
                }
            },
        }
        if !listed {
            continue;
        }
        let ready = names
            .iter()
            .filter(|name| seen.ready_since(name, since))
            .count();
        if last_count != Some(ready) {
            progress(ready, names.len());
            last_count = Some(ready);
        }
        if ready == names.len() {
            return Ok(());
        }
    }
}

/// Nodes that were not Ready (now) by the deadline.
#[derive(Debug)]
pub struct NotReady {
    /// Their names, in the order the wait was given them.
    pub nodes: Vec<String>,
    message: String,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NotReady {}

fn timed_out(
    names: &[String],
    seen: &Seen,
    since: Timestamp,
    listed: bool,
    last_error: Option<String>,
    timeout: Duration,
) -> anyhow::Error {
    let secs = timeout.as_secs();
    if !listed {
        let why = last_error.map_or(String::new(), |err| format!(": {err}"));
        return Failure::Unreachable(format!(
            "the Kubernetes API did not answer within {secs}s{why}; is the master running? (`orchestrator status`)"
        ))
        .into();
    }
    let laggards: Vec<(&String, String)> = names
        .iter()
        .filter_map(|name| Some((name, seen.why_not(name, since)?)))
        .collect();
    let lines: Vec<String> = laggards
        .iter()
        .map(|(name, why)| format!("  {name}: {why}"))
        .collect();
    NotReady {
        nodes: laggards.iter().map(|(name, _)| name.to_string()).collect(),
        message: format!(
            "nodes not Ready after {secs}s (cluster.ready_timeout_secs):\n{}",
            lines.join("\n")
        ),
    }
    .into()
}

/// Retries a failed watch quickly while the API server comes up (a node's K3s
/// restarts in seconds): 250 ms, doubling, at most 2 s apart.
#[derive(Debug, Default)]
struct Retry {
    next: Option<Duration>,
}

impl Iterator for Retry {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next.unwrap_or(Duration::from_millis(250));
        self.next = Some((delay * 2).min(Duration::from_secs(2)));
        Some(delay)
    }
}

impl Backoff for Retry {
    fn reset(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(yaml: &str) -> Node {
        serde_yaml::from_str(yaml).unwrap()
    }

    const READY_MASTER: &str = "
metadata:
  name: master
  labels:
    node-role.kubernetes.io/control-plane: 'true'
    node-role.kubernetes.io/master: 'true'
    kubernetes.io/hostname: master
status:
  nodeInfo: {kubeletVersion: v1.31.6+k3s1, architecture: amd64, bootID: '', containerRuntimeVersion: '', kernelVersion: '', kubeProxyVersion: '', machineID: '', operatingSystem: linux, osImage: '', systemUUID: ''}
  conditions:
  - {type: MemoryPressure, status: 'False', reason: KubeletHasSufficientMemory}
  - {type: Ready, status: 'True', reason: KubeletReady, message: kubelet is posting ready status, lastHeartbeatTime: '2026-12-06T10:00:00Z'}
";

    const NOT_READY_AGENT: &str = "
metadata: {name: agent}
status:
  conditions:
  - {type: Ready, status: 'False', reason: KubeletNotReady, message: 'container runtime network not ready'}
";

    #[test]
    fn ready_follows_the_ready_condition() {
        assert!(is_ready(&node(READY_MASTER)));
        assert!(!is_ready(&node(NOT_READY_AGENT)));
        assert!(!is_ready(&node("metadata: {name: fresh}")));
    }

    #[test]
    fn conditions_are_described_in_words() {
        assert_eq!(
            describe_conditions(&node(NOT_READY_AGENT)),
            "Ready=False (KubeletNotReady: container runtime network not ready)"
        );
        assert_eq!(
            describe_conditions(&node("metadata: {name: fresh}")),
            "no conditions reported yet"
        );
    }

    #[test]
    fn summary_has_roles_and_version() {
        let summary = summary(&node(READY_MASTER));
        assert_eq!(summary.name, "master");
        assert_eq!(summary.roles, ["control-plane", "master"]);
        assert!(summary.ready);
        assert_eq!(summary.version, "v1.31.6+k3s1");
    }

    fn at(time: &str) -> Timestamp {
        time.parse().unwrap()
    }

    #[test]
    fn timeout_names_each_node_that_is_not_ready() {
        let seen = Seen {
            nodes: BTreeMap::from([
                ("master".to_string(), node(READY_MASTER)),
                ("agent".to_string(), node(NOT_READY_AGENT)),
            ]),
            renewed: BTreeMap::new(),
        };
        let names = ["master", "agent", "agent-2"].map(String::from);
        let since = at("2026-12-06T09:59:00Z");
        let err = timed_out(&names, &seen, since, true, None, Duration::from_secs(5));
        let not_ready = err.downcast_ref::<NotReady>().unwrap();
        assert_eq!(not_ready.nodes, ["agent", "agent-2"]);
        let err = err.to_string();
        assert!(err.contains("after 5s"), "{err}");
        assert!(
            err.contains("  agent: Ready=False (KubeletNotReady"),
            "{err}"
        );
        assert!(err.contains("  agent-2: not registered"), "{err}");
        assert!(!err.contains("master"), "{err}");
        let unreachable = timed_out(
            &names,
            &Seen::default(),
            since,
            false,
            Some("refused".into()),
            Duration::from_secs(5),
        );
        assert_eq!(
            crate::error::exit_code(&unreachable),
            crate::error::exit::UNREACHABLE
        );
    }

    #[test]
    fn ready_counts_only_with_a_heartbeat_since_the_start() {
        let mut seen = Seen {
            nodes: BTreeMap::from([("master".to_string(), node(READY_MASTER))]),
            renewed: BTreeMap::new(),
        };
        assert!(seen.ready_since("master", at("2026-12-06T10:00:00Z")));
        // Ready=True stored before a halt: it does not count...
        let later = at("2026-12-06T10:05:00Z");
        assert!(!seen.ready_since("master", later));
        let why = seen.why_not("master", later).unwrap();
        assert!(
            why.contains("stale: no heartbeat since 2026-12-06T10:00:00Z"),
            "{why}"
        );
        // ...until the kubelet renews its lease (it posts an unchanged status rarely).
        seen.renewed
            .insert("master".into(), at("2026-12-06T10:05:03Z"));
        assert!(seen.ready_since("master", later));
        assert_eq!(seen.why_not("master", later), None);
        // A renewed lease does not make a NotReady node Ready.
        seen.nodes.insert("agent".into(), node(NOT_READY_AGENT));
        seen.renewed.insert("agent".into(), later);
        assert!(!seen.ready_since("agent", later));
    }

    #[test]
    fn retry_delays_grow_to_a_cap_and_reset() {
        let mut retry = Retry::default();
        let first: Vec<u128> = retry.by_ref().take(5).map(|d| d.as_millis()).collect();
        assert_eq!(first, [250, 500, 1000, 2000, 2000]);
        retry.reset();
        assert_eq!(retry.next(), Some(Duration::from_millis(250)));
    }
}
