//! `verify` end to end, two ways, both `#[ignore]`d:
//!
//! - against kube-sim (`KUBE_SIM_KUBECONFIG`): the built binary deploys the
//!   stack into a namespace of the test's own, the cluster, manifest and object
//!   checks pass, then each breakage fails its check with its reason;
//! - the API checks against the three services run as local processes over
//!   the local PostgreSQL and RabbitMQ (each test its own databases and
//!   queue), billing-app stopped and started through the `BillingControl` seam.
//!
//! Run with: `cargo build -p inventory-app -p billing-app -p api-gateway &&
//! KUBE_SIM_KUBECONFIG=/tmp/kube-sim/kubeconfig cargo test --test verify -- --ignored`

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use orchestrator::reporter::Silent;
use orchestrator::verify::api::{self, API_CHECKS};
use orchestrator::verify::billing::{BillingControl, KubeBilling};
use orchestrator::verify::{Status, checks};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// Nothing listens on the discard port: the gateway "does not answer".
const NO_GATEWAY: &str = "http://127.0.0.1:9";

/// A project deployed to a namespace of its own on kube-sim, deleted on drop.
struct Deployed {
    dir: tempfile::TempDir,
    namespace: support::kube_sim::TestNamespace,
    kubeconfig: String,
    client: kube::Client,
}

impl Deployed {
    async fn new() -> Self {
        let kubeconfig = support::kube_sim::kubeconfig();
        let dir = tempfile::tempdir().unwrap();
        let namespace = support::kube_sim::TestNamespace::new("verify", &kubeconfig);
        let client = support::kube_sim::client(&kubeconfig).await;
        let deployed = Deployed {
            dir,
            namespace,
            kubeconfig,
            client,
        };
        deployed.configure(&Path::new(REPO).join("manifests"));
        let output = deployed.run(&["deploy", "--skip-build", "--skip-push"]);
        assert!(output.status.success(), "deploy failed:\n{}", text(&output));
        deployed
    }

    /// Points the configuration at a manifests directory.
    fn configure(&self, manifests: &Path) {
        let config = format!(
            "[deploy]\nnamespace = \"{}\"\nmanifests = \"{}\"\ndockerfiles = \"{REPO}/dockerfiles\"\ntimeout_secs = 60\n",
            self.namespace.name,
            manifests.display()
        );
        std::fs::write(self.dir.path().join("orchestrator.toml"), config).unwrap();
    }

    /// The binary with `args`, run in the project against kube-sim.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_orchestrator"));
        command
            .args(args)
            .args(["--kubeconfig", &self.kubeconfig])
            .current_dir(self.dir.path())
            .env("DOCKERHUB_USERNAME", "student")
            .env("NO_COLOR", "1");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `verify --json` with a gateway that does not answer: the exit code and the checks.
    fn verify(&self) -> (Option<i32>, Vec<Value>) {
        let output = self.run(&["verify", "--json", "--gateway-url", NO_GATEWAY]);
        let audit: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
            panic!("verify --json printed no JSON ({err}):\n{}", text(&output))
        });
        (
            output.status.code(),
            audit["checks"].as_array().unwrap().clone(),
        )
    }

    fn run_kubectl(&self, args: &[&str]) -> String {
        let output = Command::new("kubectl")
            .args(["--kubeconfig", &self.kubeconfig, "-n", &self.namespace.name])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace.name)
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn named<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}"))
}

/// The names of the cluster, manifest and object checks that did not pass.
fn not_passed(checks: &[Value]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c["section"] != "api" && c["status"] != "passed")
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn reason(check: &Value) -> String {
    check["reason"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn patch<K>(api: &Api<K>, name: &str, patch: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
async fn checks_pass_after_deploy_and_each_breakage_fails_with_its_reason() {
    let stack = Deployed::new().await;

    let (code, all) = stack.verify();
    assert_eq!(not_passed(&all), Vec::<String>::new(), "{all:#?}");
    assert_eq!(code, Some(6), "an unanswered gateway fails the audit");
    let first = named(&all, api::MOVIE_POST);
    assert_eq!(first["status"], "failed");
    assert!(
        reason(first).contains(&format!("the gateway at {NO_GATEWAY} did not answer")),
        "{first:#}"
    );
    for name in &API_CHECKS[1..] {
        assert_eq!(named(&all, name)["status"], "skipped", "{name}");
    }
    let nodes = named(&all, checks::NODES)["evidence"].to_string();
    assert!(
        nodes.contains("Node/master: Ready, roles control-plane,master"),
        "{nodes}"
    );
    assert!(nodes.contains("Node/agent: Ready, roles <none>"), "{nodes}");

    // The API checks' seam on a cluster: billing-app's StatefulSet scaled down and back.
    let billing = KubeBilling {
        client: stack.client.clone(),
        namespace: stack.namespace.name.clone(),
    };
    assert_eq!(billing.replicas().await.unwrap(), 1);
    billing.scale(0).await.unwrap();
    assert_eq!(billing.replicas().await.unwrap(), 0);
    let pods = stack.run_kubectl(&["get", "pods", "-o", "name"]);
    assert!(
        pods.contains("inventory-app-") && !pods.contains("billing-app-"),
        "{pods}"
    );
    billing.scale(1).await.unwrap();
    assert!(
        stack
            .run_kubectl(&["get", "pods", "-o", "name"])
            .contains("billing-app-0")
    );

    // Ctrl-C while verify holds billing-app stopped: it is restored, exit 130.
    let gateway = echo_gateway().await;
    let mut verify = stack
        .command(&["verify", "--gateway-url", &gateway])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stateful_sets = stack.api::<StatefulSet>();
    let replicas = async || {
        let scale = stateful_sets.get_scale("billing-app").await.unwrap();
        scale.spec.unwrap().replicas.unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while replicas().await != 0 {
        assert!(
            Instant::now() < deadline,
            "verify never stopped billing-app"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let interrupt = Command::new("kill")
        .args(["-INT", &verify.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupt.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = verify.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "verify did not end after Ctrl-C");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(verify.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("billing-app restored to 1 replica(s)"),
        "{stderr}"
    );
    assert_eq!(replicas().await, 1);

    // HPA max 5.
    let hpas = stack.api::<HorizontalPodAutoscaler>();
    patch(&hpas, "billing-app", json!({"spec": {"maxReplicas": 5}})).await;
    let (code, all) = stack.verify();
    assert_eq!(code, Some(6));
    assert_eq!(not_passed(&all), [checks::AUTOSCALERS]);
    let why = reason(named(&all, checks::AUTOSCALERS));
    assert!(
        why.contains("HorizontalPodAutoscaler/billing-app: maxReplicas 5, expected 3"),
        "{why}"
    );
    patch(&hpas, "billing-app", json!({"spec": {"maxReplicas": 3}})).await;

    // A literal password in an env var: live, and in a copy of the manifests.
    let deployments = stack.api::<Deployment>();
    let container = |env: Value| json!({"spec": {"template": {"spec": {"containers": [{"name": "inventory-app", "env": [env]}]}}}});
    patch(
        &deployments,
        "inventory-app",
        container(json!({"name": "ADMIN_PASSWORD", "value": "hunter2"})),
    )
    .await;
    let broken = stack.dir.path().join("broken-manifests");
    std::fs::create_dir(&broken).unwrap();
    for entry in std::fs::read_dir(Path::new(REPO).join("manifests")).unwrap() {
        let entry = entry.unwrap();
        let mut text = std::fs::read_to_string(entry.path()).unwrap();
        if entry.file_name() == "inventory-app.yaml" {
            text = text.replace("          env:\n", "          env:\n            - name: ADMIN_PASSWORD\n              value: hunter2\n");
        }
        std::fs::write(broken.join(entry.file_name()), text).unwrap();
    }
    stack.configure(&broken);
    let output = stack.run(&["verify", "--gateway-url", NO_GATEWAY]);
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(6), "{shown}");
    assert!(
        shown.contains("✗ no credential outside Secret manifests"),
        "{shown}"
    );
    assert!(
        shown.contains("→ Deployment/inventory-app (inventory-app.yaml) container inventory-app: env ADMIN_PASSWORD is a literal value"),
        "{shown}"
    );
    assert!(shown.contains("✗ credentials come from Secrets"), "{shown}");
    assert!(
        shown.contains("→ Deployment/inventory-app container inventory-app: env ADMIN_PASSWORD is a literal value"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    stack.configure(&Path::new(REPO).join("manifests"));
    patch(
        &deployments,
        "inventory-app",
        container(json!({"name": "ADMIN_PASSWORD", "$patch": "delete"})),
    )
    .await;

    // An image outside the registry namespace.
    let gateway = deployments.get("api-gateway").await.unwrap();
    let image = gateway.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap();
    let with_image = |image: &str| json!({"spec": {"template": {"spec": {"containers": [{"name": "api-gateway", "image": image}]}}}});
    patch(
        &deployments,
        "api-gateway",
        with_image("docker.io/someoneelse/api-gateway:1"),
    )
    .await;
    let (_, all) = stack.verify();
    assert_eq!(not_passed(&all), [checks::IMAGES]);
    let why = reason(named(&all, checks::IMAGES));
    assert!(
        why.contains("Deployment/api-gateway api-gateway: docker.io/someoneelse/api-gateway:1 is not in docker.io/student"),
        "{why}"
    );
    patch(&deployments, "api-gateway", with_image(&image)).await;
    let (_, all) = stack.verify();
    assert_eq!(
        not_passed(&all),
        Vec::<String>::new(),
        "every breakage was undone: {all:#?}"
    );

    // A Deployment instead of a StatefulSet.
    let stateful_sets = stack.api::<StatefulSet>();
    let database = stateful_sets.get("billing-db").await.unwrap();
    stateful_sets
        .delete("billing-db", &DeleteParams::background())
        .await
        .unwrap();
    let spec = database.spec.unwrap();
    // Its claim becomes a scratch volume: what a Deployment can have (beside
    // the volumes the pod already has: init scripts, socket dir, /tmp).
    let mut template = serde_json::to_value(spec.template).unwrap();
    let mut volumes = template["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    volumes.push(json!({"name": "data", "emptyDir": {}}));
    template["spec"]["volumes"] = volumes.into();
    let replacement: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "billing-db", "labels": {"app.kubernetes.io/name": "billing-db"}},
        "spec": {"selector": spec.selector, "template": template},
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &replacement)
        .await
        .unwrap();
    let (_, all) = stack.verify();
    assert_eq!(not_passed(&all), [checks::KINDS, checks::VOLUMES]);
    let why = reason(named(&all, checks::KINDS));
    assert!(
        why.contains("billing-db is a Deployment; the exercise wants a StatefulSet"),
        "{why}"
    );
}

/// A stand-in for the gateway: a POST is answered 200 with its body, a GET
/// with the list of the bodies posted to that path — except the second order,
/// which is never answered, holding verify while billing-app is stopped.
async fn echo_gateway() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let posted: Arc<Mutex<BTreeMap<String, Vec<Value>>>> = Arc::default();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(answer(stream, posted.clone()));
        }
    });
    url
}

async fn answer(
    mut stream: tokio::net::TcpStream,
    posted: Arc<Mutex<BTreeMap<String, Vec<Value>>>>,
) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    let (head, length) = loop {
        let read = stream.read(&mut buffer).await.unwrap();
        request.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&request).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            break (text[..end].to_string(), end + 4 + length);
        }
    };
    while request.len() < length {
        let read = stream.read(&mut buffer).await.unwrap();
        request.extend_from_slice(&buffer[..read]);
    }
    let mut words = head.split_whitespace();
    let (method, path) = (
        words.next().unwrap(),
        words.next().unwrap().trim_end_matches('/').to_string(),
    );
    let reply = if method == "POST" {
        let body: Value = serde_json::from_slice(&request[head.len() + 4..]).unwrap();
        let count = {
            let mut posted = posted.lock().unwrap();
            let list = posted.entry(path.clone()).or_default();
            list.push(body.clone());
            list.len()
        };
        if path == "/api/billing" && count == 2 {
            std::future::pending::<()>().await;
        }
        body
    } else {
        Value::Array(
            posted
                .lock()
                .unwrap()
                .get(&path)
                .cloned()
                .unwrap_or_default(),
        )
    };
    let body = reply.to_string();
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await.unwrap();
}

/// The three services as local processes over their own databases and queue.
struct LocalStack {
    inventory: Child,
    gateway: Child,
    gateway_url: String,
    databases: [String; 2],
    queue: String,
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        for child in [&mut self.inventory, &mut self.gateway] {
            let _ = child.kill();
            let _ = child.wait();
        }
        for database in &self.databases {
            psql(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"));
        }
        let _ = Command::new("rabbitmqctl")
            .args(["delete_queue", "-q", &self.queue])
            .stdout(Stdio::null())
            .status();
    }
}

fn psql(sql: &str) {
    let status = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-q",
            "-c",
            sql,
        ])
        .status()
        .expect("psql runs");
    assert!(status.success(), "psql -c {sql:?} failed");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The apps' binaries, built next to this test (`cargo build -p inventory-app -p billing-app -p api-gateway`).
fn app_binary(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let path = deps.parent().unwrap().parent().unwrap().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the apps first (cargo build -p inventory-app -p billing-app -p api-gateway)",
        path.display()
    );
    path
}

fn spawn(name: &str, env: &[(String, String)]) -> Child {
    Command::new(app_binary(name))
        .envs(env.iter().cloned())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until `http://127.0.0.1:PORT/readyz` answers 200.
async fn ready(port: u16) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://127.0.0.1:{port}/readyz");
    loop {
        if http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never answered 200");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// billing-app as a local process: 1 replica while it runs, 0 once killed.
struct ProcessBilling {
    env: Vec<(String, String)>,
    port: u16,
    child: Mutex<Option<Child>>,
    /// Told each time billing-app has been stopped.
    stopped: tokio::sync::Notify,
}

impl BillingControl for ProcessBilling {
    fn replicas(&self) -> BoxFuture<'_, anyhow::Result<i32>> {
        Box::pin(async move { Ok(i32::from(self.child.lock().unwrap().is_some())) })
    }

    fn scale(&self, replicas: i32) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            if replicas == 0 {
                if let Some(mut child) = self.child.lock().unwrap().take() {
                    child.kill()?;
                    child.wait()?;
                }
                self.stopped.notify_one();
                return Ok(());
            }
            if self.child.lock().unwrap().is_none() {
                *self.child.lock().unwrap() = Some(spawn("billing-app", &self.env));
            }
            ready(self.port).await;
            Ok(())
        })
    }
}

impl Drop for ProcessBilling {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn local_stack() -> (LocalStack, ProcessBilling) {
    let tag = orchestrator::state::random_hex(4);
    let (movies, orders, queue) = (
        format!("verify_movies_{tag}"),
        format!("verify_orders_{tag}"),
        format!("verify_{tag}"),
    );
    psql(&format!("CREATE DATABASE {movies}"));
    psql(&format!("CREATE DATABASE {orders}"));
    let (inventory_port, billing_port, gateway_port) = (free_port(), free_port(), free_port());
    let vars = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let rabbit = [
        ("RABBITMQ_HOST", "127.0.0.1"),
        ("RABBITMQ_PORT", "5672"),
        ("RABBITMQ_USER", "guest"),
        ("RABBITMQ_PASSWORD", "guest"),
        ("RABBITMQ_QUEUE", queue.as_str()),
    ];
    let database = |prefix: &str, name: &str| {
        vars(&[
            (&format!("{prefix}_DB_HOST"), "127.0.0.1"),
            (&format!("{prefix}_DB_PORT"), "5432"),
            (&format!("{prefix}_DB_USER"), "postgres"),
            (
                &format!("{prefix}_DB_PASSWORD"),
                "unused with trust authentication",
            ),
            (&format!("{prefix}_DB_NAME"), name),
        ])
    };
    let mut inventory_env = database("INVENTORY", &movies);
    inventory_env.extend(vars(&[("INVENTORY_APP_PORT", &inventory_port.to_string())]));
    let mut billing_env = database("BILLING", &orders);
    billing_env.extend(vars(&rabbit));
    billing_env.extend(vars(&[("BILLING_APP_PORT", &billing_port.to_string())]));
    let mut gateway_env = vars(&rabbit);
    gateway_env.extend(vars(&[
        ("INVENTORY_APP_HOST", "127.0.0.1"),
        ("INVENTORY_APP_PORT", &inventory_port.to_string()),
        ("BILLING_APP_HOST", "127.0.0.1"),
        ("BILLING_APP_PORT", &billing_port.to_string()),
        ("APIGATEWAY_PORT", &gateway_port.to_string()),
    ]));
    let stack = LocalStack {
        inventory: spawn("inventory-app", &inventory_env),
        gateway: spawn("api-gateway", &gateway_env),
        gateway_url: format!("http://127.0.0.1:{gateway_port}"),
        databases: [movies, orders],
        queue,
    };
    let billing = ProcessBilling {
        env: billing_env,
        port: billing_port,
        child: Mutex::new(None),
        stopped: tokio::sync::Notify::new(),
    };
    billing.scale(1).await.unwrap();
    ready(inventory_port).await;
    ready(gateway_port).await;
    (stack, billing)
}

#[tokio::test]
#[ignore = "needs PostgreSQL and RabbitMQ on 127.0.0.1 and the apps built"]
async fn api_checks_pass_against_the_running_services() {
    let (stack, billing) = local_stack().await;
    let all = api::run(Ok(&stack.gateway_url), &billing, &Silent).await;
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, API_CHECKS);
    for check in &all {
        assert_eq!(check.status, Status::Passed, "{check:#?}");
        assert!(!check.evidence.is_empty(), "{check:#?}");
    }
    let evidence = |name: &str| {
        all.iter()
            .find(|c| c.name == name)
            .unwrap()
            .evidence
            .join("\n")
    };
    let down = evidence(api::ORDER_WHILE_STOPPED);
    assert!(
        down.contains("/api/billing/ {") && down.contains("-> 200"),
        "{down}"
    );
    let absent = evidence(api::ORDER_NOT_LISTED);
    assert!(
        absent.contains("GET ") && absent.contains("-> 503"),
        "{absent}"
    );
    assert!(evidence(api::ORDER_LANDS).contains("listed after"));
    assert_eq!(
        billing.replicas().await.unwrap(),
        1,
        "billing-app is running again"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL and RabbitMQ on 127.0.0.1 and the apps built"]
async fn billing_app_is_restored_when_the_checks_are_dropped_while_it_is_stopped() {
    let (stack, billing) = local_stack().await;
    let url = stack.gateway_url.clone();
    tokio::select! {
        _ = api::run(Ok(&url), &billing, &Silent) => panic!("the checks ended before billing-app was stopped"),
        () = billing.stopped.notified() => {}
    }
    // The checks' future is gone, as on Ctrl-C: billing-app runs again.
    assert_eq!(billing.replicas().await.unwrap(), 1);
    let listed = reqwest::get(format!("{url}/api/billing")).await.unwrap();
    assert_eq!(listed.status(), 200);
}

/// billing-app that refuses to stop, and records each scale asked of it.
#[derive(Default)]
struct StuckBilling {
    asked: Mutex<Vec<i32>>,
}

impl BillingControl for StuckBilling {
    fn replicas(&self) -> BoxFuture<'_, anyhow::Result<i32>> {
        Box::pin(async { Ok(2) })
    }

    fn scale(&self, replicas: i32) -> BoxFuture<'_, anyhow::Result<()>> {
        self.asked.lock().unwrap().push(replicas);
        Box::pin(async move {
            match replicas {
                0 => anyhow::bail!("the scale was refused"),
                _ => Ok(()),
            }
        })
    }
}

#[tokio::test]
async fn billing_app_that_cannot_be_stopped_is_restored_and_the_rest_skipped() {
    let gateway = echo_gateway().await;
    let billing = StuckBilling::default();
    let all = api::run(Ok(&gateway), &billing, &Silent).await;
    let outcome: Vec<(&str, Status)> = all.iter().map(|c| (c.name.as_str(), c.status)).collect();
    assert_eq!(
        outcome,
        [
            (api::MOVIE_POST, Status::Passed),
            (api::MOVIE_GET, Status::Passed),
            (api::ORDER_POST, Status::Passed),
            (api::ORDER_LISTED, Status::Passed),
            (api::BILLING_STOPPED, Status::Failed),
            (api::ORDER_WHILE_STOPPED, Status::Skipped),
            (api::ORDER_NOT_LISTED, Status::Skipped),
            (api::BILLING_RESTORED, Status::Passed),
            (api::ORDER_LANDS, Status::Skipped),
        ]
    );
    assert_eq!(all[4].reason, ["the scale was refused"]);
    assert_eq!(*billing.asked.lock().unwrap(), [0, 2]);
}
