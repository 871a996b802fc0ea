//! The node wait against kube-sim's halted nodes (`node.sh down`): a Node
//! keeps `Ready=True` after its kubelet stops, as after `vagrant halt`, so
//! `start` must not trust it, and `create` on a running cluster repairs a
//! node that does not come back. These drills change kube-sim for every
//! test, so they hold it alone (`kube_sim::exclusive`), in their own binary.
//!
//! Run with: `KUBE_SIM_KUBECONFIG=/tmp/kube-sim/kubeconfig cargo test --test lifecycle_node_faults -- --ignored`

mod support;

use support::kube_sim;
use support::vagrant::Sandbox;

fn sandbox(sim: &kube_sim::Exclusive) -> Sandbox {
    let config = "[cluster]\nmaster_ip = \"127.0.0.1\"\nready_timeout_secs = 5\n\n[deploy]\nnamespace = \"shop\"\n";
    let mut sandbox = Sandbox::new(config);
    sandbox.env("FAKE_VAGRANT_K3S_YAML", &sim.kubeconfig);
    sandbox
}

#[test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
fn start_does_not_trust_a_ready_node_without_a_fresh_heartbeat() {
    let mut sim = kube_sim::exclusive();
    let sandbox = sandbox(&sim);
    sandbox.run(&["create"]).expect_code(0);
    sandbox.run(&["stop"]).expect_code(0);

    // The agent's VM boots but its kubelet does not run: its Node still says Ready=True.
    sim.node_down("agent");
    let run = sandbox.run(&["start"]);
    run.expect_code(1)
        .stderr_has("nodes not Ready after 5s")
        .stderr_has("  agent: Ready=True is stale: neither its lease nor its status was renewed during the wait")
        .stderr_has("to repair a node that does not come back, run `orchestrator create`: it provisions it again");
    assert!(!run.stderr().contains("  master:"), "{}", run.stderr());
    assert!(
        !run.stdout().contains("cluster started"),
        "{}",
        run.stdout()
    );

    sim.node_up("agent");
    sandbox
        .run(&["start"])
        .expect_code(0)
        .stdout_has("cluster started");
}

#[test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
fn create_on_a_running_cluster_provisions_a_node_that_is_not_ready_again() {
    let mut sim = kube_sim::exclusive();
    let mut sandbox = sandbox(&sim);
    sandbox.run(&["create"]).expect_code(0);

    // The agent's K3s service died (a wrong token, a stale node password);
    // provisioning it again brings it back.
    sim.node_down("agent");
    sandbox.env("FAKE_VAGRANT_ON_PROVISION", &sim.node_up_command("agent"));
    sandbox.clear_calls();
    let run = sandbox.run(&["create"]);
    run.expect_code(0)
        .stderr_has("agent not Ready: provisioning again")
        .stdout_has("cluster created (already running");
    let provisions: Vec<String> = sandbox
        .vagrant_calls()
        .into_iter()
        .filter(|c| c.starts_with("provision"))
        .collect();
    assert_eq!(provisions, ["provision agent"]);
}
