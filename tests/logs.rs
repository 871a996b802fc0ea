//! `logs APP` through the built binary: arguments refused before any cluster
//! is reached, and, against kube-sim (`#[ignore]`d; `KUBE_SIM_KUBECONFIG`),
//! the simulated kubelet's lines, each prefixed by its pod.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;

/// `orchestrator logs ARGS` in a directory whose configuration names `namespace`.
fn logs_command(namespace: &str, args: &[&str]) -> (tempfile::TempDir, Command) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("orchestrator.toml"),
        format!("[deploy]\nnamespace = \"{namespace}\"\n"),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_orchestrator"));
    command
        .arg("logs")
        .args(args)
        .current_dir(dir.path())
        .env("NO_COLOR", "1");
    (dir, command)
}

/// Runs `orchestrator logs ARGS` to its end.
fn logs(namespace: &str, args: &[&str]) -> Output {
    let (_dir, mut command) = logs_command(namespace, args);
    command.output().unwrap()
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

#[test]
fn an_unknown_app_is_refused_before_the_cluster_is_reached() {
    // No kubeconfig exists: only a check before any connection can answer.
    let output = logs("orchestrator", &["nosuch", "--kubeconfig", "/nonexistent"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("invalid value 'nosuch'"), "{text}");
    assert!(
        text.contains(
            "inventory-db, billing-db, rabbitmq, inventory-app, billing-app, api-gateway"
        ),
        "the stack's components are listed: {text}"
    );
}

/// A namespace of the test's own on kube-sim, created.
async fn namespace(client: &kube::Client, kubeconfig: &str) -> support::kube_sim::TestNamespace {
    let scratch = support::kube_sim::TestNamespace::new("logs", kubeconfig);
    let object = serde_json::from_value(json!({"metadata": {"name": scratch.name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    scratch
}

/// Creates a pod of inventory-app and waits until the simulated kubelet runs it.
async fn running_pod(pods: &Api<Pod>, name: &str) {
    let pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "inventory-app"}},
        "spec": {
            "automountServiceAccountToken": false,
            "containers": [{"name": "inventory-app", "image": "docker.io/student/inventory-app:1"}],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while pods
        .get(name)
        .await
        .unwrap()
        .status
        .and_then(|s| s.phase)
        .as_deref()
        != Some("Running")
    {
        assert!(
            Instant::now() < deadline,
            "the simulated kubelet never ran {name}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
async fn logs_on_kube_sim_are_prefixed_by_pod() {
    let kubeconfig = support::kube_sim::kubeconfig();
    let client = support::kube_sim::client(&kubeconfig).await;
    let scratch = namespace(&client, &kubeconfig).await;
    let namespace = scratch.name.as_str();

    let output = logs(namespace, &["inventory-app", "--kubeconfig", &kubeconfig]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!(
            "inventory-app has no pods in namespace {namespace}"
        )),
        "{}",
        stderr(&output)
    );

    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    running_pod(&pods, "inventory-app-0").await;
    running_pod(&pods, "inventory-app-1").await;
    // kube-sim's simulated kubelet serves three lines per container.
    for args in [&[][..], &["--since", "5m"][..]] {
        let mut all = vec!["inventory-app", "--kubeconfig", &kubeconfig];
        all.extend(args);
        let output = logs(namespace, &all);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let expected: Vec<String> = ["inventory-app-0", "inventory-app-1"]
            .iter()
            .flat_map(|pod| {
                [
                    "simulated container started",
                    "listening (simulated; no process runs)",
                    "ready",
                ]
                .map(|line| format!("[{pod}] {pod}/inventory-app: {line}"))
            })
            .collect();
        assert_eq!(
            stdout.lines().collect::<Vec<_>>(),
            expected,
            "logs {args:?}: every replica, one after the other, each line prefixed by its pod"
        );
        assert!(
            output.stderr.is_empty(),
            "nothing on stderr: {}",
            stderr(&output)
        );
    }
}

#[tokio::test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
async fn follow_picks_up_a_replica_started_after_it_began() {
    let kubeconfig = support::kube_sim::kubeconfig();
    let client = support::kube_sim::client(&kubeconfig).await;
    let scratch = namespace(&client, &kubeconfig).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &scratch.name);
    running_pod(&pods, "inventory-app-0").await;

    let (_dir, mut command) = logs_command(
        &scratch.name,
        &[
            "inventory-app",
            "-f",
            "--since",
            "1h",
            "--kubeconfig",
            &kubeconfig,
        ],
    );
    let mut child = Following(
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // Lines until one starts with `prefix`, or those seen in 10 s.
    let until = |prefix: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match received.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        Err(seen)
    };

    let first = until("[inventory-app-0] ");
    assert!(first.is_ok(), "the running replica is followed: {first:?}");
    running_pod(&pods, "inventory-app-1").await;
    let joined =
        until("[inventory-app-1] inventory-app-1/inventory-app: simulated container started");
    assert!(
        joined.is_ok(),
        "the replica started later is followed from its first line: {joined:?}"
    );
}

/// `logs -f`, stopped when the test ends, also when it fails.
struct Following(std::process::Child);

impl Drop for Following {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
