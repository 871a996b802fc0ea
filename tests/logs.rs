//! `logs APP` through the built binary: arguments refused before any cluster
//! is reached, and, against kube-sim (`#[ignore]`d; `KUBE_SIM_KUBECONFIG`),
//! a clear failure where no container runs to have a log.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;

/// Runs `orchestrator logs ARGS` in a directory whose configuration names `namespace`.
fn logs(namespace: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("orchestrator.toml"),
        format!("[deploy]\nnamespace = \"{namespace}\"\n"),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .arg("logs")
        .args(args)
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_bad_duration_is_a_usage_error_before_the_cluster_is_reached() {
    let output = logs(
        "orchestrator",
        &[
            "api-gateway",
            "--since",
            "soon",
            "--kubeconfig",
            "/nonexistent",
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--since soon: not a duration like 30s, 5m or 2h"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
async fn logs_on_kube_sim_fail_clearly_and_unknown_apps_are_refused() {
    let kubeconfig = support::kube_sim::kubeconfig();
    let client = support::kube_sim::client(&kubeconfig).await;
    let scratch = support::kube_sim::TestNamespace::new("logs", &kubeconfig);
    let namespace = scratch.name.clone();
    let namespaces = Api::<Namespace>::all(client.clone());
    let object = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    namespaces
        .create(&PostParams::default(), &object)
        .await
        .unwrap();

    let output = logs(&namespace, &["inventory-app", "--kubeconfig", &kubeconfig]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!(
            "inventory-app has no pods in namespace {namespace}"
        )),
        "{}",
        stderr(&output)
    );

    // kube-sim's pods run no container: the API server finds no log to serve.
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace);
    let pod = serde_json::from_value(json!({
        "metadata": {"name": "inventory-app-0", "labels": {"app.kubernetes.io/name": "inventory-app"}},
        "spec": {
            "automountServiceAccountToken": false,
            "containers": [{"name": "inventory-app", "image": "docker.io/student/inventory-app:1"}],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while pods
        .get("inventory-app-0")
        .await
        .unwrap()
        .status
        .and_then(|s| s.phase)
        .as_deref()
        != Some("Running")
    {
        assert!(
            Instant::now() < deadline,
            "the simulated kubelet never ran the pod"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let output = logs(&namespace, &["inventory-app", "--kubeconfig", &kubeconfig]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("cannot read the log of pod inventory-app-0 (container inventory-app)"),
        "{text}"
    );
    assert!(
        text.contains("caused by:"),
        "the API server's answer is shown: {text}"
    );

    let output = logs(&namespace, &["nosuch", "--kubeconfig", &kubeconfig]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no app nosuch: the apps are inventory-db, billing-db, rabbitmq"),
        "{}",
        stderr(&output)
    );
}
