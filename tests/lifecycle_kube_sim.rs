//! The node wait and the whole cluster lifecycle against a real API server:
//! kube-sim, whose nodes `master` and `agent` are Ready. The fake `vagrant`
//! hands out kube-sim's kubeconfig as the master's `k3s.yaml`, and the master's
//! address is 127.0.0.1, so the rewritten kubeconfig still reaches kube-sim.
//!
//! Run with: `KUBE_SIM_KUBECONFIG=/tmp/kube-sim/kubeconfig cargo test --test lifecycle_kube_sim -- --ignored`

mod support;

use std::sync::Mutex;
use std::time::Duration;

use orchestrator::nodes;
use support::kube_sim;
use support::vagrant::Sandbox;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
async fn ready_nodes_end_the_wait_at_their_next_renewal() {
    let client = kube_sim::client(&kube_sim::kubeconfig()).await;
    let seen = Mutex::new(Vec::new());
    nodes::wait_ready(
        client,
        &names(&["master", "agent"]),
        // kube-sim's kubelets renew their leases every 2 s.
        Duration::from_secs(20),
        |ready, total| {
            seen.lock().unwrap().push(format!("{ready}/{total}"));
        },
    )
    .await
    .unwrap();
    // Counted as each lease is renewed, never backwards.
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.last().map(String::as_str), Some("2/2"), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
}

#[tokio::test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
async fn a_node_that_never_registers_times_out_by_name() {
    let client = kube_sim::client(&kube_sim::kubeconfig()).await;
    let wanted = names(&["master", "agent", "agent-2"]);
    let err = nodes::wait_ready(
        client,
        &wanted,
        // Long enough for kube-sim's leases to be renewed: only agent-2 may be missing.
        Duration::from_secs(5),
        |_, _| {},
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("nodes not Ready after 5s"), "{err}");
    assert!(err.contains("  agent-2: not registered"), "{err}");
    assert!(
        !err.contains("  master:") && !err.contains("  agent:"),
        "{err}"
    );
}

fn sandbox(agents: u8) -> Sandbox {
    let config = format!(
        "[cluster]\nagents = {agents}\nmaster_ip = \"127.0.0.1\"\nready_timeout_secs = 5\n\n[deploy]\nnamespace = \"shop\"\n"
    );
    let mut sandbox = Sandbox::new(&config);
    sandbox.env("FAKE_VAGRANT_K3S_YAML", &kube_sim::kubeconfig());
    sandbox
}

#[test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
fn create_create_stop_start_status_destroy() {
    let sandbox = sandbox(1);
    std::fs::create_dir_all(sandbox.user_kubeconfig().parent().unwrap()).unwrap();
    std::fs::write(
        sandbox.user_kubeconfig(),
        "apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts:\n- name: other\n  context: {cluster: x, user: y}\ncurrent-context: other\n",
    )
    .unwrap();

    let created = sandbox.run(&["create"]);
    created.expect_code(0);
    created.stdout_has("cluster created\n");
    created.stderr_has("nodes Ready: 2/2 Ready");
    let ours: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&sandbox.read(&sandbox.state_file("kubeconfig"))).unwrap();
    assert_eq!(
        ours["clusters"][0]["cluster"]["server"],
        "https://127.0.0.1:6443"
    );
    // kube-sim's CA file, beside its kubeconfig: kept as the path it was.
    let ca = std::path::Path::new(&kube_sim::kubeconfig())
        .with_file_name("pki/ca.crt")
        .display()
        .to_string();
    assert_eq!(
        ours["clusters"][0]["cluster"]["certificate-authority"],
        ca.as_str()
    );

    sandbox.clear_calls();
    let again = sandbox.run(&["create"]);
    again
        .expect_code(0)
        .stdout_has("cluster created (already running");
    assert_eq!(sandbox.vagrant_calls(), ["status --machine-readable"]);

    let stopped = sandbox.run(&["stop"]);
    stopped.expect_code(0);
    assert!(stopped.stdout().ends_with("cluster stopped\n"));
    assert_eq!(sandbox.machine("master"), "poweroff");

    sandbox.clear_calls();
    let started = sandbox.run(&["start"]);
    started.expect_code(0);
    started.stdout_has("cluster started\n");
    assert_eq!(
        sandbox.sorted_vagrant_calls(),
        [
            "status --machine-readable",
            "up --no-provision agent",
            "up --no-provision master"
        ]
    );

    let status = sandbox.run(&["status", "--json"]);
    status.expect_code(0);
    let json: serde_json::Value = serde_json::from_str(&status.stdout()).unwrap();
    assert_eq!(
        json["machines"][1],
        serde_json::json!({"name": "agent", "state": "running"})
    );
    let nodes: Vec<(String, bool)> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                n["ready"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        nodes,
        [("agent".to_string(), true), ("master".to_string(), true)]
    );
    assert!(
        json["api"]
            .as_str()
            .unwrap()
            .contains("https://127.0.0.1:6443"),
        "{json}"
    );
    let text = sandbox.run(&["status"]);
    text.stdout_has("master     Ready");

    let destroyed = sandbox.run(&["destroy", "--yes"]);
    destroyed.expect_code(0);
    assert!(destroyed.stdout().ends_with("cluster destroyed\n"));
    let user: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&sandbox.read(&sandbox.user_kubeconfig())).unwrap();
    assert_eq!(user["contexts"].as_sequence().unwrap().len(), 1);
    assert_eq!(user["contexts"][0]["name"], "other");
    assert_eq!(user["current-context"], "other");
    assert!(!sandbox.state_file("kubeconfig").exists());
}

#[test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
fn create_names_the_node_that_never_becomes_ready() {
    let sandbox = sandbox(2);
    let run = sandbox.run(&["create"]);
    run.expect_code(1);
    run.stderr_has("nodes not Ready after 5s");
    run.stderr_has("agent-2: not registered");
    run.stderr_has("nodes Ready: 2/3 Ready");
}
