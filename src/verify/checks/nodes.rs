//! The cluster's nodes.

use super::Verdict;
use crate::nodes::NodeSummary;

/// The cluster: a Ready control plane and a Ready agent at least.
pub(super) fn ready_master_and_agent(nodes: &[NodeSummary]) -> Verdict {
    let is_control_plane = |n: &NodeSummary| {
        n.roles
            .iter()
            .any(|r| r == "control-plane" || r == "master")
    };
    let evidence = nodes
        .iter()
        .map(|n| {
            let roles = if n.roles.is_empty() {
                "<none>".to_string()
            } else {
                n.roles.join(",")
            };
            let ready = if n.ready { "Ready" } else { "NotReady" };
            format!(
                "Node/{}: {ready}, roles {roles}, kubelet {}",
                n.name, n.version
            )
        })
        .collect();
    let mut problems = Vec::new();
    if nodes.len() < 2 {
        problems.push(format!(
            "{} node(s); the exercise wants a master and at least one agent",
            nodes.len()
        ));
    }
    problems.extend(
        nodes
            .iter()
            .filter(|n| !n.ready)
            .map(|n| format!("{} is not Ready", n.name)),
    );
    if !nodes.iter().any(is_control_plane) {
        problems.push("no node has the control-plane role".into());
    }
    if !nodes.iter().any(|n| !is_control_plane(n)) {
        problems.push("no agent: every node is a control plane".into());
    }
    Verdict::judged(
        evidence,
        problems,
        "start the VMs with `orchestrator start` (or `orchestrator create`); `kubectl get nodes` shows each node's state",
    )
}
