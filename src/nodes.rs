//! Node readiness as a pure function of the Node object, and waiting for a set
//! of nodes by watching them (no polling): the wait ends the moment the last
//! one turns Ready, or at the deadline with each laggard and its conditions.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
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

/// Waits until every node in `names` is Ready, calling `progress(ready, total)`
/// whenever that count changes. On timeout the error names each node that is
/// not Ready with its conditions (or that it never registered); if the API
/// never answered, it is an unreachable-cluster failure.
pub async fn wait_ready(
    client: kube::Client,
    names: &[String],
    timeout: Duration,
    progress: impl Fn(usize, usize),
) -> anyhow::Result<()> {
    let stream =
        watcher(Api::<Node>::all(client), watcher::Config::default()).backoff(Retry::default());
    let mut stream = std::pin::pin!(stream);
    let deadline = tokio::time::sleep(timeout);
    let mut deadline = std::pin::pin!(deadline);
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let mut listing: BTreeMap<String, Node> = BTreeMap::new();
    let mut listed = false;
    let mut last_error = None;
    let mut last_count = None;
    loop {
        let event = tokio::select! {
            () = &mut deadline => return Err(timed_out(names, &nodes, listed, last_error, timeout)),
            event = stream.next() => event,
        };
        match event {
            None => anyhow::bail!("the watch on the cluster's nodes ended unexpectedly"),
            Some(Err(err)) => {
                last_error = Some(err.to_string());
                continue;
            }
            Some(Ok(watcher::Event::Init)) => listing.clear(),
            Some(Ok(watcher::Event::InitApply(node))) => {
                listing.insert(node.metadata.name.clone().unwrap_or_default(), node);
                continue;
            }
            Some(Ok(watcher::Event::InitDone)) => {
                nodes = std::mem::take(&mut listing);
                listed = true;
            }
            Some(Ok(watcher::Event::Apply(node))) => {
                nodes.insert(node.metadata.name.clone().unwrap_or_default(), node);
            }
            Some(Ok(watcher::Event::Delete(node))) => {
                nodes.remove(node.metadata.name.as_deref().unwrap_or_default());
            }
        }
        if !listed {
            continue;
        }
        let ready = names
            .iter()
            .filter(|n| nodes.get(*n).is_some_and(is_ready))
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

fn timed_out(
    names: &[String],
    nodes: &BTreeMap<String, Node>,
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
    let lines: Vec<String> = names
        .iter()
        .filter_map(|name| match nodes.get(name) {
            None => Some(format!(
                "  {name}: not registered (its K3s agent has not joined)"
            )),
            Some(node) if !is_ready(node) => {
                Some(format!("  {name}: {}", describe_conditions(node)))
            }
            Some(_) => None,
        })
        .collect();
    anyhow::anyhow!(
        "nodes not Ready after {secs}s (cluster.ready_timeout_secs):\n{}",
        lines.join("\n")
    )
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
  - {type: Ready, status: 'True', reason: KubeletReady, message: kubelet is posting ready status}
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

    #[test]
    fn timeout_names_each_node_that_is_not_ready() {
        let nodes = BTreeMap::from([
            ("master".to_string(), node(READY_MASTER)),
            ("agent".to_string(), node(NOT_READY_AGENT)),
        ]);
        let names = ["master", "agent", "agent-2"].map(String::from);
        let err = timed_out(&names, &nodes, true, None, Duration::from_secs(5)).to_string();
        assert!(err.contains("after 5s"), "{err}");
        assert!(
            err.contains("  agent: Ready=False (KubeletNotReady"),
            "{err}"
        );
        assert!(err.contains("  agent-2: not registered"), "{err}");
        assert!(!err.contains("master"), "{err}");
        let unreachable = timed_out(
            &names,
            &BTreeMap::new(),
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
    fn retry_delays_grow_to_a_cap_and_reset() {
        let mut retry = Retry::default();
        let first: Vec<u128> = retry.by_ref().take(5).map(|d| d.as_millis()).collect();
        assert_eq!(first, [250, 500, 1000, 2000, 2000]);
        retry.reset();
        assert_eq!(retry.next(), Some(Duration::from_millis(250)));
    }
}
