//! Node readiness as a pure function of the Node object, and waiting for a set
//! of nodes by watching them and their leases (no polling): the wait ends the
//! moment the last one is Ready *now*, or at the deadline with each laggard
//! and its conditions.
//!
//! "Now" matters: after a halt, a Node keeps `Ready=True` until the node
//! controller's grace period runs out, so a node counts only once its kubelet
//! is seen at work during the wait: its Lease renewed (a kubelet renews it
//! every 10 s) or its Ready condition's heartbeat posted again (a kubelet
//! posts an unchanged status only every few minutes; kube-sim's and vm-sim's
//! simulated kubelets post it every 2 s and never renew their leases). Seen
//! renewed, not renewed recently: both times are the guest's clock, and
//! comparing them with the host's would let a stale node whose clock runs
//! ahead pass and hold up a live one whose clock runs behind.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde::Serialize;

use crate::error::Failure;
use crate::kubeapi;

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

/// When the kubelet last posted the node's Ready condition (its clock).
fn ready_heartbeat(node: &Node) -> Option<Timestamp> {
    conditions(node)
        .find(|c| c.type_ == "Ready")
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|time| time.0)
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

/// The nodes of a wait as last seen: Node objects, their leases' renewals and
/// their Ready heartbeats.
#[derive(Debug, Default)]
struct Seen {
    nodes: BTreeMap<String, Node>,
    leases: BTreeMap<String, Renewals>,
    heartbeats: BTreeMap<String, Renewals>,
}

/// A time the kubelet writes (the node's clock: a lease's `renewTime`, the
/// Ready condition's `lastHeartbeatTime`) when the wait first saw it, and the
/// latest seen: any change is the kubelet at work (a guest clock stepped back
/// too).
#[derive(Debug, Clone, Copy)]
struct Renewals {
    first: Timestamp,
    last: Timestamp,
}

impl Renewals {
    fn record(times: &mut BTreeMap<String, Renewals>, name: String, at: Timestamp) {
        times
            .entry(name)
            .and_modify(|seen| seen.last = at)
            .or_insert(Renewals {
                first: at,
                last: at,
            });
    }

    fn renewed(times: &BTreeMap<String, Renewals>, name: &str) -> bool {
        times.get(name).is_some_and(|seen| seen.last != seen.first)
    }
}

impl Seen {
    /// Records `name`'s lease as seen with this `renewTime`.
    fn lease(&mut self, name: String, at: Timestamp) {
        Renewals::record(&mut self.leases, name, at);
    }

    /// Records a Node as seen, with its Ready heartbeat.
    fn node(&mut self, node: Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(at) = ready_heartbeat(&node) {
            Renewals::record(&mut self.heartbeats, name.clone(), at);
        }
        self.nodes.insert(name, node);
    }

    /// Ready, and its kubelet seen at work during the wait.
    fn ready_now(&self, name: &str) -> bool {
        self.nodes.get(name).is_some_and(is_ready)
            && (Renewals::renewed(&self.leases, name) || Renewals::renewed(&self.heartbeats, name))
    }

    /// Why `name` does not count, in words (`None` when it does).
    fn why_not(&self, name: &str) -> Option<String> {
        let node = match self.nodes.get(name) {
            None => return Some("not registered (its K3s agent has not joined)".into()),
            Some(_) if self.ready_now(name) => return None,
            Some(node) => node,
        };
        if !is_ready(node) {
            return Some(describe_conditions(node));
        }
        Some(match self.leases.get(name) {
            Some(seen) => format!(
                "Ready=True is stale: neither its lease nor its status was renewed during the wait (last lease renewal {} by the node's clock), so its kubelet is not running",
                seen.last.round(jiff::Unit::Second).unwrap_or(seen.last)
            ),
            None => "Ready=True is stale: it has no lease, so its kubelet is not running".into(),
        })
    }
}

/// What one of the wait's two watches saw.
enum Sighting {
    Nodes(Box<watcher::Event<Node>>),
    /// A node's lease, seen with this `renewTime`.
    Renewed(String, Timestamp),
}

/// Waits until every node in `names` is Ready with its lease renewed during
/// the wait, calling `progress(ready, total)` whenever that count changes. On
/// timeout the error ([`NotReady`]) names each node that does not count and
/// why; if the API never answered, it is an unreachable-cluster failure.
pub async fn wait_ready(
    client: kube::Client,
    names: &[String],
    timeout: Duration,
    progress: impl Fn(usize, usize),
) -> anyhow::Result<()> {
    let nodes = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .backoff(kubeapi::watch_backoff())
        .map(|event| event.map(|event| Sighting::Nodes(Box::new(event))));
    let leases = watcher(
        Api::<Lease>::namespaced(client, "kube-node-lease"),
        watcher::Config::default(),
    )
    .backoff(kubeapi::watch_backoff())
    .applied_objects()
    .filter_map(|lease| async move {
        match lease {
            Ok(lease) => {
                let at = lease.spec?.renew_time?.0;
                Some(Ok(Sighting::Renewed(lease.metadata.name?, at)))
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
            () = &mut deadline => return Err(timed_out(names, &seen, listed, last_error, timeout)),
            change = stream.next() => change,
        };
        match change {
            None => anyhow::bail!("the watch on the cluster's nodes ended unexpectedly"),
            Some(Err(err)) => {
                last_error = Some(err.to_string());
                continue;
            }
            Some(Ok(Sighting::Renewed(name, at))) => seen.lease(name, at),
            Some(Ok(Sighting::Nodes(event))) => match *event {
                watcher::Event::Init => listing.clear(),
                watcher::Event::InitApply(node) => {
                    listing.insert(node.metadata.name.clone().unwrap_or_default(), node);
                    continue;
                }
                watcher::Event::InitDone => {
                    seen.nodes.clear();
                    for node in std::mem::take(&mut listing).into_values() {
                        seen.node(node);
                    }
                    listed = true;
                }
                watcher::Event::Apply(node) => seen.node(node),
                watcher::Event::Delete(node) => {
                    seen.nodes
                        .remove(node.metadata.name.as_deref().unwrap_or_default());
                }
            },
        }
        if !listed {
            continue;
        }
        let ready = names.iter().filter(|name| seen.ready_now(name)).count();
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
        .filter_map(|name| Some((name, seen.why_not(name)?)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn node(yaml: &str) -> Node {
        serde_yaml_ng::from_str(yaml).unwrap()
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
        let mut seen = seen_after(
            "master",
            READY_MASTER,
            &[at("2026-12-06T10:00:00Z"), at("2026-12-06T10:00:10Z")],
        );
        seen.nodes.insert("agent".into(), node(NOT_READY_AGENT));
        let names = ["master", "agent", "agent-2"].map(String::from);
        let err = timed_out(&names, &seen, true, None, Duration::from_secs(5));
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
    fn a_stale_node_is_named_with_its_last_renewal() {
        let mut seen = Seen::default();
        seen.nodes.insert("master".into(), node(READY_MASTER));
        assert_eq!(
            seen.why_not("master").as_deref(),
            Some("Ready=True is stale: it has no lease, so its kubelet is not running")
        );
        seen.lease("master".into(), at("2026-12-06T10:00:00.4Z"));
        // Ready=True stored before a halt: it does not count...
        let why = seen.why_not("master").unwrap();
        assert!(
            why.contains("stale: neither its lease nor its status was renewed during the wait (last lease renewal 2026-12-06T10:00:00Z by the node's clock)"),
            "{why}"
        );
        // ...until the kubelet renews its lease (it posts an unchanged status rarely).
        seen.lease("master".into(), at("2026-12-06T10:00:10Z"));
        assert_eq!(seen.why_not("master"), None);
    }

    /// The wait's view after it saw `name`'s lease renewed at each of `renewals`
    /// (times by the node's clock), its Node being `node`.
    fn seen_after(name: &str, node: &str, renewals: &[Timestamp]) -> Seen {
        let mut seen = Seen::default();
        seen.nodes.insert(name.into(), self::node(node));
        for at in renewals {
            seen.lease(name.into(), *at);
        }
        seen
    }

    fn counts(seen: &Seen, name: &str) -> bool {
        seen.ready_now(name)
    }

    #[test]
    fn a_node_counts_once_its_lease_is_renewed_whatever_its_clock() {
        let hour = jiff::SignedDuration::from_hours(1);
        let now = Timestamp::now();
        // A guest clock an hour behind the host's: its renewals still show a live kubelet.
        let behind = seen_after(
            "master",
            READY_MASTER,
            &[now - hour, now - hour + jiff::SignedDuration::from_secs(10)],
        );
        assert!(counts(&behind, "master"));
        // A guest clock an hour ahead, its kubelet stopped (a halted VM): its
        // last renewal looks recent, but no renewal was seen during the wait.
        let ahead = seen_after("master", READY_MASTER, &[now + hour]);
        assert!(!counts(&ahead, "master"));
        // Seen once, then the same renewal again (a watch that re-listed): not renewed.
        let relisted = seen_after("master", READY_MASTER, &[now, now]);
        assert!(!counts(&relisted, "master"));
        // A guest clock stepped back between two renewals: renewed all the same.
        let stepped = seen_after(
            "master",
            READY_MASTER,
            &[now, now - jiff::SignedDuration::from_secs(5)],
        );
        assert!(counts(&stepped, "master"));
        // A renewed lease does not make a NotReady node Ready.
        let not_ready = seen_after("agent", NOT_READY_AGENT, &[now - hour, now]);
        assert!(!counts(&not_ready, "agent"));
    }

    #[test]
    fn a_node_counts_once_its_ready_status_is_posted_again_without_a_lease_renewal() {
        let mut seen = Seen::default();
        seen.node(node(READY_MASTER));
        seen.node(node(READY_MASTER));
        assert!(!counts(&seen, "master"), "the same heartbeat seen twice");
        seen.node(node(
            &READY_MASTER.replace("2026-12-06T10:00:00Z", "2026-12-06T09:59:58Z"),
        ));
        assert!(
            counts(&seen, "master"),
            "a heartbeat posted again (a clock behind too)"
        );
        // Not Ready, however often it posts.
        let mut not_ready = Seen::default();
        not_ready.node(node(NOT_READY_AGENT));
        not_ready.node(node(
            &NOT_READY_AGENT.replace("{name: agent}", "{name: agent, uid: u}"),
        ));
        assert!(!counts(&not_ready, "agent"));
    }
}
