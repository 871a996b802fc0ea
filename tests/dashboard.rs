//! `dashboard` in a real browser: the built binary serves the page for a
//! namespace of kube-sim (`#[ignore]`d; `KUBE_SIM_KUBECONFIG`), and headless
//! Chromium, driven through chromedriver (Debian's `chromium` and
//! `chromium-driver`), must show the nodes and workloads, follow a
//! `kubectl scale` without a reload, and show a log line. A screenshot of the
//! page is kept in `target/test-output/dashboard.png`.

mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use kube::api::{Api, PostParams};
use serde_json::json;

/// A child process of the test, killed when the test ends, whatever happened.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `orchestrator dashboard` for `namespace` and returns it with the URL it printed.
fn start_dashboard(dir: &Path, namespace: &str, kubeconfig: &str) -> (Running, String) {
    std::fs::write(
        dir.join("orchestrator.toml"),
        format!("[deploy]\nnamespace = \"{namespace}\"\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args(["dashboard", "--no-open", "--kubeconfig", kubeconfig])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    // Keeps reading, so that the dashboard never writes to a closed pipe.
    let (sender, urls) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.trim().starts_with("http://") {
                let _ = sender.send(line.trim().to_string());
            }
        }
    });
    let url = urls
        .recv_timeout(Duration::from_secs(20))
        .expect("the dashboard printed no URL");
    (running, url)
}

/// chromedriver on a free loopback port, once it answers.
fn start_chromedriver() -> (Running, u16) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .spawn()
        .expect("cannot start chromedriver: apt-get install chromium chromium-driver");
    let running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    (running, port)
}

async fn browser(port: u16) -> Client {
    let capabilities = json!({
        "goog:chromeOptions": {
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1600,1100"],
        }
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("cannot start a Chromium session")
}

/// The text of the first element matching `selector` ("" when there is none).
async fn text(browser: &Client, selector: &str) -> String {
    let text = browser
        .execute(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
            vec![json!(selector)],
        )
        .await
        .unwrap();
    text.as_str().unwrap_or_default().to_string()
}

/// Waits until `check` holds for the text at `selector`, or fails saying what was seen.
async fn wait_for(
    browser: &Client,
    selector: &str,
    within: Duration,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let seen = text(browser, selector).await;
        if check(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: after {within:?}, {selector} shows {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn create<K>(api: &Api<K>, object: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.create(
        &PostParams::default(),
        &serde_json::from_value(object).unwrap(),
    )
    .await
    .unwrap();
}

/// A small stack of the test's own: one app, its autoscaler, a Secret and the gateway's Service.
async fn deploy_small_stack(client: &kube::Client, namespace: &str) {
    create(
        &Api::<Namespace>::all(client.clone()),
        json!({"metadata": {"name": namespace}}),
    )
    .await;
    let labels = json!({"app.kubernetes.io/name": "inventory-app"});
    create(
        &Api::<Deployment>::namespaced(client.clone(), namespace),
        json!({
            "metadata": {"name": "inventory-app", "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": false,
                        "containers": [{"name": "inventory-app", "image": "docker.io/student/inventory-app:1"}],
                    },
                },
            },
        }),
    )
    .await;
    create(
        &Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), namespace),
        json!({
            "metadata": {"name": "inventory-app"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "inventory-app"},
                "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 60,
            },
        }),
    )
    .await;
    create(
        &Api::<Secret>::namespaced(client.clone(), namespace),
        json!({"metadata": {"name": "inventory-db-credentials"}, "stringData": {"password": "never-shown"}}),
    )
    .await;
    create(
        &Api::<Service>::namespaced(client.clone(), namespace),
        json!({
            "metadata": {"name": "api-gateway"},
            "spec": {"type": "LoadBalancer", "selector": {"app.kubernetes.io/name": "api-gateway"},
                     "ports": [{"port": 3000}]},
        }),
    )
    .await;
}

/// Runs the binary with `args` in an empty project directory.
fn orchestrator(args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args(args)
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn an_unreachable_cluster_is_said_before_anything_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("dead-kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster: {server: 'https://127.0.0.1:9'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: dead\n  context: {cluster: dead, user: u}\ncurrent-context: dead\n",
    )
    .unwrap();
    let output = orchestrator(&[
        "dashboard",
        "--no-open",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("127.0.0.1:9"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("http://"));
}

#[test]
fn a_missing_kubeconfig_is_a_usage_error_before_anything_is_served() {
    let output = orchestrator(&["dashboard", "--no-open", "--kubeconfig", "/nonexistent"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("http://"));
}

#[test]
fn demo_arguments_are_checked_before_the_cluster_is_reached() {
    let output = orchestrator(&[
        "demo",
        "hpa",
        "--duration",
        "soon",
        "--kubeconfig",
        "/nonexistent",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--duration soon: not a duration"),
        "{stderr}"
    );
    let output = orchestrator(&["demo", "hpa", "--rate", "0"]);
    assert_eq!(output.status.code(), Some(2));
}

fn screenshot_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-output/dashboard.png")
}

#[tokio::test]
#[ignore = "needs kube-sim (KUBE_SIM_KUBECONFIG) and chromium-driver"]
async fn the_page_shows_the_cluster_and_follows_a_scale_and_the_logs_without_reload() {
    let kubeconfig = support::kube_sim::kubeconfig();
    let client = support::kube_sim::client(&kubeconfig).await;
    let scratch = support::kube_sim::TestNamespace::new("dashboard", &kubeconfig);
    let namespace = scratch.name.clone();
    deploy_small_stack(&client, &namespace).await;

    let dir = tempfile::tempdir().unwrap();
    let (_dashboard, url) = start_dashboard(dir.path(), &namespace, &kubeconfig);
    let (_driver, port) = start_chromedriver();
    let browser = browser(port).await;
    browser.goto(&url).await.unwrap();

    let soon = Duration::from_secs(10);
    wait_for(&browser, "#connection", soon, "the page goes live", |t| {
        t == "live"
    })
    .await;
    for node in ["master", "agent"] {
        let selector = format!("#nodes tr[data-name='{node}'] td.status");
        wait_for(&browser, &selector, soon, "the node is listed Ready", |t| {
            t == "Ready"
        })
        .await;
    }
    let ready = "#workloads tr[data-name='inventory-app'] td.ready";
    wait_for(&browser, ready, soon, "the workload is ready", |t| {
        t == "1/1"
    })
    .await;
    let secrets = text(&browser, "#secrets").await;
    assert!(secrets.contains("inventory-db-credentials"), "{secrets}");
    assert!(!text(&browser, "body").await.contains("never-shown"));
    wait_for(&browser, "#gateway", soon, "the gateway's URL", |t| {
        t.starts_with("http://127.0.0.10:3000")
    })
    .await;

    // A marker that only survives if the page is never reloaded.
    browser
        .execute("window.notReloaded = true;", vec![])
        .await
        .unwrap();
    let scaled = Command::new("kubectl")
        .args(["--kubeconfig", &kubeconfig, "-n", &namespace])
        .args(["scale", "deployment/inventory-app", "--replicas=3"])
        .output()
        .unwrap();
    assert!(scaled.status.success(), "{scaled:?}");
    let started = Instant::now();
    wait_for(&browser, ready, soon, "the scale shows", |t| t == "3/3").await;
    println!(
        "the scale to 3 showed on the page {:.1}s after kubectl",
        started.elapsed().as_secs_f64()
    );
    let pods = text(&browser, "#pods tbody").await;
    assert_eq!(pods.matches("inventory-app-").count(), 3, "{pods}");
    let marker = browser
        .execute("return window.notReloaded === true;", vec![])
        .await
        .unwrap();
    assert_eq!(marker, json!(true), "the page was reloaded");

    // kube-sim's simulated kubelet serves a few lines per container, then one a second.
    wait_for(
        &browser,
        "#log-inventory-app",
        soon,
        "a log line in the tail",
        |t| t.lines().any(|l| l.starts_with("[inventory-app-")),
    )
    .await;

    let png = browser.screenshot().await.unwrap();
    std::fs::create_dir_all(screenshot_path().parent().unwrap()).unwrap();
    std::fs::write(screenshot_path(), &png).unwrap();
    println!("screenshot: {}", screenshot_path().display());
    browser.close().await.unwrap();
}
