//! Test support for the services against real servers: a database and a
//! queue of its own for each test on the shared PostgreSQL and RabbitMQ, and
//! private servers for the tests that stop and restart one.

mod servers;

use std::future::Future;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use lapin::BasicProperties;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use service_common::amqp::AmqpSettings;
use service_common::postgres::DbSettings;
use tower::ServiceExt;

pub use servers::{PrivatePostgres, PrivateRabbit};

pub const SHARED_POSTGRES_PORT: u16 = 5432;
pub const SHARED_RABBITMQ_PORT: u16 = 5672;

/// A name no other test, in this process or another, uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{count}_{nanos}", std::process::id())
}

/// A database of the test's own, dropped with it.
pub struct TestDb {
    pub settings: DbSettings,
}

impl TestDb {
    pub fn create() -> Self {
        Self::create_on(SHARED_POSTGRES_PORT)
    }

    pub fn create_on(port: u16) -> Self {
        let name = unique_name("test");
        psql(port, &format!("CREATE DATABASE {name}")).expect("cannot create the test database");
        TestDb {
            settings: DbSettings {
                host: "127.0.0.1".into(),
                port,
                user: "postgres".into(),
                password: "unused with trust authentication".to_owned().into(),
                database: name,
            },
        }
    }

    /// A trivial query's answer, as text.
    pub fn query(&self, sql: &str) -> String {
        let output = Command::new("psql")
            .args(psql_args(self.settings.port, &self.settings.database))
            .args(["-tAc", sql])
            .output()
            .expect("cannot run psql");
        assert!(output.status.success(), "psql failed: {output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    pub fn count(&self, table: &str) -> usize {
        self.query(&format!("SELECT count(*) FROM {table}"))
            .parse()
            .unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Fails harmlessly when a private server is already gone.
        let drop = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.settings.database
        );
        let _ = psql(self.settings.port, &drop);
    }
}

fn psql_args(port: u16, database: &str) -> Vec<String> {
    let port = port.to_string();
    [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "postgres",
        "-d",
        database,
        "-v",
        "ON_ERROR_STOP=1",
        "-q",
    ]
    .map(String::from)
    .to_vec()
}

fn psql(port: u16, sql: &str) -> Result<(), String> {
    let output = Command::new("psql")
        .args(psql_args(port, "postgres"))
        .args(["-c", sql])
        .output()
        .map_err(|error| error.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// A queue name of the test's own on a RabbitMQ at `port`; the queue is
/// deleted with it.
pub struct TestQueue {
    pub settings: AmqpSettings,
}

impl TestQueue {
    pub fn new() -> Self {
        Self::on(SHARED_RABBITMQ_PORT)
    }

    pub fn on(port: u16) -> Self {
        TestQueue {
            settings: AmqpSettings {
                host: "127.0.0.1".into(),
                port,
                user: "guest".into(),
                password: "guest".to_owned().into(),
                vhost: "/".into(),
                queue: unique_name("test"),
            },
        }
    }

    /// Publishes raw bodies straight to the queue, bypassing the gateway.
    pub async fn publish(&self, bodies: &[&str]) {
        let messages: Vec<_> = bodies.iter().map(|body| (*body, None)).collect();
        self.publish_with_ids(&messages).await;
    }

    /// Publishes each body with its `message_id` property, if any.
    pub async fn publish_with_ids(&self, messages: &[(&str, Option<&str>)]) {
        let connection = self.settings.connect("test").await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        self.settings.declare_queue(&channel).await.unwrap();
        for (body, message_id) in messages {
            let mut properties = BasicProperties::default();
            if let Some(id) = message_id {
                properties = properties.with_message_id((*id).into());
            }
            channel
                .basic_publish(
                    "",
                    &self.settings.queue,
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    properties,
                )
                .await
                .unwrap();
        }
        connection.close(200, "done").await.unwrap();
    }

    /// Messages ready in the queue (neither delivered nor unacknowledged).
    pub async fn message_count(&self) -> u32 {
        self.counts(&self.settings.queue).await.0
    }

    /// Messages in the dead-letter queue.
    pub async fn dead_letter_count(&self) -> u32 {
        self.counts(&self.settings.dead_letter_queue()).await.0
    }

    /// Takes the next ready message off the queue: its body and properties.
    pub async fn take_one(&self) -> Option<(Vec<u8>, BasicProperties)> {
        let connection = self.settings.connect("test").await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        let options = BasicGetOptions { no_ack: true };
        let message = channel
            .basic_get(&self.settings.queue, options)
            .await
            .unwrap()
            .map(|message| (message.delivery.data, message.delivery.properties));
        connection.close(200, "done").await.unwrap();
        message
    }

    /// Deletes the queue, as an operator's mistake would.
    pub async fn delete(&self) {
        let connection = self.settings.connect("test").await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .queue_delete(&self.settings.queue, QueueDeleteOptions::default())
            .await
            .unwrap();
        connection.close(200, "done").await.unwrap();
    }

    /// The ready messages and the consumers of queue `name`.
    pub async fn counts(&self, name: &str) -> (u32, u32) {
        let connection = self.settings.connect("test").await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        self.settings.declare_queue(&channel).await.unwrap();
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let queue = channel
            .queue_declare(name, passive, FieldTable::default())
            .await
            .unwrap();
        connection.close(200, "done").await.unwrap();
        (queue.message_count(), queue.consumer_count())
    }
}

impl Default for TestQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        let settings = self.settings.clone();
        // Drop cannot await: a thread of its own runs the deletion, and a
        // broker that is gone makes it a no-op.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(connection) = settings.connect("test cleanup").await {
                    if let Ok(channel) = connection.create_channel().await {
                        for queue in [settings.queue.clone(), settings.dead_letter_queue()] {
                            let options = QueueDeleteOptions::default();
                            let _ = channel.queue_delete(&queue, options).await;
                        }
                    }
                    let _ = connection.close(200, "done").await;
                }
            });
        })
        .join();
    }
}

/// Sends one request to `app` without a socket; the answer must be JSON.
pub async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let body = body.map_or_else(Body::empty, |body| Body::from(body.to_owned()));
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response.headers().get("content-type").cloned();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        assert_eq!(
            content_type.as_ref().and_then(|value| value.to_str().ok()),
            Some("application/json"),
            "{method} {uri}: the content type of a JSON answer"
        );
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("{method} {uri}: not JSON: {bytes:?}"))
    };
    (status, json)
}

/// A request, and the error status it must be answered with.
pub type ErrorCase<'a> = (&'a str, &'a str, Option<&'a str>, StatusCode);

/// Sends each request and checks its status and its JSON `error` message.
pub async fn assert_errors(app: &Router, cases: &[ErrorCase<'_>]) {
    for (method, uri, body, expected) in cases {
        let (status, answer) = call(app, method, uri, *body).await;
        assert_eq!(status, *expected, "{method} {uri} answered {answer}");
        assert!(
            answer["error"].is_string(),
            "{method} {uri} answered {answer}"
        );
    }
}

/// Waits until `check` holds, polling; panics naming `what` past `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A future that completes when its [`Background`] task is told to stop.
pub type StopSignal = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Work running on its own task until told to stop, such as a server or
/// billing-app's consumer.
pub struct Background {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Background {
    pub fn spawn<F, Fut>(work: F) -> Self
    where
        F: FnOnce(StopSignal) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(work(Box::pin(async {
            let _ = stopped.await;
        })));
        Background { stop, task }
    }

    /// Tells the work to stop and waits until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

/// An HTTP server on a free local port, for the gateway to forward to.
pub struct TestServer {
    pub port: u16,
    serving: Background,
}

impl TestServer {
    pub async fn start(router: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let serving = Background::spawn(|stopped| async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stopped)
                .await
                .unwrap();
        });
        TestServer { port, serving }
    }

    /// Stops accepting, closes idle connections, and waits for the rest.
    pub async fn stop(self) {
        self.serving.stop().await;
    }
}

/// A free TCP port on 127.0.0.1 (free when asked: good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The status of `GET path` on a local port, or `None` while nothing answers
/// there: for the services run as processes, as in a pod.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    // "HTTP/1.1 200 OK"
    answer.split(' ').nth(1)?.parse().ok()
}

/// A service's binary run with `env` only, as in a pod, killed when dropped.
pub struct ServiceProcess {
    child: std::process::Child,
    pub port: u16,
}

impl ServiceProcess {
    /// Runs `binary` with only `env`, listening on a free port that
    /// `port_variable` names.
    pub fn spawn(binary: &str, port_variable: &str, env: Vec<(String, String)>) -> Self {
        let port = free_port();
        let child = Command::new(binary)
            .env_clear()
            .envs(env)
            .env(port_variable, port.to_string())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {binary}: {error}"));
        ServiceProcess { child, port }
    }

    /// Panics when the process has exited.
    pub fn assert_running(&mut self) {
        let exited = self.child.try_wait().unwrap();
        assert!(exited.is_none(), "the service exited: {exited:?}");
    }

    pub fn status(&self, path: &str) -> Option<u16> {
        http_status(self.port, path)
    }

    /// Sends SIGTERM, as the kubelet does to stop a pod.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
    }

    /// The exit status, once the process has exited within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `RABBITMQ_*` variables that point a service at `queue`.
pub fn amqp_env(queue: &AmqpSettings) -> Vec<(String, String)> {
    [
        ("HOST", queue.host.clone()),
        ("PORT", queue.port.to_string()),
        ("USER", queue.user.clone()),
        ("PASSWORD", queue.password.expose().to_owned()),
        ("QUEUE", queue.queue.clone()),
    ]
    .into_iter()
    .map(|(name, value)| (format!("RABBITMQ_{name}"), value))
    .collect()
}

/// The `<PREFIX>_DB_*` variables that point a service at `db`.
pub fn db_env(prefix: &str, db: &DbSettings) -> Vec<(String, String)> {
    [
        ("HOST", db.host.clone()),
        ("PORT", db.port.to_string()),
        ("USER", db.user.clone()),
        ("PASSWORD", db.password.expose().to_owned()),
        ("NAME", db.database.clone()),
    ]
    .into_iter()
    .map(|(name, value)| (format!("{prefix}_DB_{name}"), value))
    .collect()
}
