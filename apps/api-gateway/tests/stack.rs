//! The gateway in front of the real inventory-app and billing-app, over real
//! PostgreSQL and RabbitMQ: the audit's flow, the contract's statuses, and
//! broker outages.

use std::time::Duration;

use api_gateway::{AppState, Upstream};
use axum::Router;
use axum::http::StatusCode;
use serde_json::{Value, json};
use service_common::amqp::AmqpSettings;
use service_common::postgres::Database;
use testkit::{
    Background, ErrorCase, PrivateRabbit, TestDb, TestQueue, TestServer, assert_errors, call,
    eventually, free_port,
};

/// The three services over their own databases and queue; the gateway is
/// driven in-process, the two apps it forwards to listen on local ports.
struct Stack {
    gateway: Router,
    _inventory: TestServer,
    billing: Option<Billing>,
    orders_db: TestDb,
    _movies_db: TestDb,
    queue: AmqpSettings,
}

/// billing-app's two halves: its HTTP server and its consumer.
struct Billing {
    server: TestServer,
    consumer: Background,
}

impl Stack {
    async fn start(queue: &TestQueue) -> Self {
        let movies_db = TestDb::create();
        let movies = Database::new(movies_db.settings.lazy_pool(4));
        inventory_app::migrate(movies.clone()).await;
        let inventory = TestServer::start(inventory_app::app(movies)).await;

        let orders_db = TestDb::create();
        let billing = start_billing(&queue.settings, &orders_db).await;

        let state = AppState::new(
            Upstream::new("inventory-app", "127.0.0.1", inventory.port),
            Upstream::new("billing-app", "127.0.0.1", billing.server.port),
            queue.settings.clone(),
        );
        Stack {
            gateway: api_gateway::app(state),
            _inventory: inventory,
            billing: Some(billing),
            orders_db,
            _movies_db: movies_db,
            queue: queue.settings.clone(),
        }
    }

    async fn stop_billing(&mut self) {
        let billing = self.billing.take().expect("billing-app is running");
        billing.consumer.stop().await;
        billing.server.stop().await;
    }

    /// billing-app starts again, on a new port the gateway does not know:
    /// only its consumer matters to the tests that restart it.
    async fn start_billing_again(&mut self) {
        self.billing = Some(start_billing(&self.queue, &self.orders_db).await);
    }

    /// Posts one order until the gateway, reconnecting by itself, takes it.
    async fn post_order_once_the_broker_is_back(&self, user_id: usize) {
        let body = order(user_id);
        eventually(
            "the gateway to publish again",
            Duration::from_secs(30),
            || async { self.call("POST", "/api/billing", Some(&body)).await.0 == StatusCode::OK },
        )
        .await;
    }

    async fn call(&self, method: &str, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
        call(&self.gateway, method, uri, body).await
    }
}

async fn start_billing(amqp: &AmqpSettings, db: &TestDb) -> Billing {
    let billing = billing_app::Billing::new(db.settings.lazy_pool(4));
    billing_app::migrate(billing.clone()).await;
    let server = TestServer::start(billing_app::app(billing.clone())).await;
    let amqp = amqp.clone();
    let consumer = Background::spawn(|stopped| billing_app::consume_until(amqp, billing, stopped));
    Billing { server, consumer }
}

fn order(user_id: usize) -> String {
    json!({ "user_id": user_id, "number_of_items": "3", "total_amount": 45.5 }).to_string()
}

/// Waits for `expected` distinct orders (each test gives each order its own
/// user id). Delivery is at least once, so a duplicate is allowed, a loss not.
async fn orders_reach(db: &TestDb, expected: usize) {
    let distinct = || db.query("SELECT count(DISTINCT user_id) FROM orders");
    let what = format!("{expected} orders");
    eventually(&what, Duration::from_secs(30), || async {
        distinct().parse::<usize>().unwrap() >= expected
    })
    .await;
    assert_eq!(distinct(), expected.to_string());
}

#[tokio::test]
#[ignore = "needs PostgreSQL and RabbitMQ on 127.0.0.1"]
async fn the_audit_flow_through_the_gateway() {
    let queue = TestQueue::new();
    let mut stack = Stack::start(&queue).await;

    let movie = r#"{"title": "A new movie", "description": "Very short description"}"#;
    let (status, created) = stack.call("POST", "/api/movies/", Some(movie)).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let (status, movies) = stack.call("GET", "/api/movies/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(movies, json!([created]));

    let (status, answer) = stack.call("POST", "/api/billing/", Some(&order(20))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["message"].is_string());
    orders_reach(&stack.orders_db, 1).await;
    let (status, orders) = stack.call("GET", "/api/billing", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(orders[0]["user_id"], 20);
    assert_eq!(orders[0]["total_amount"], "45.50");

    stack.stop_billing().await;
    let (status, answer) = stack.call("POST", "/api/billing/", Some(&order(22))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = stack.call("GET", "/api/billing/", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(stack.orders_db.count("orders"), 1);

    stack.start_billing_again().await;
    orders_reach(&stack.orders_db, 2).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and RabbitMQ on 127.0.0.1"]
async fn every_error_is_the_contract_status_in_json() {
    let queue = TestQueue::new();
    let stack = Stack::start(&queue).await;
    let too_large = json!({ "padding": "x".repeat(70 * 1024) }).to_string();
    let cases: &[ErrorCase] = &[
        // inventory-app's answers come through unchanged.
        ("GET", "/api/movies/424242", None, StatusCode::NOT_FOUND),
        ("GET", "/api/movies/abc", None, StatusCode::BAD_REQUEST),
        (
            "POST",
            "/api/movies",
            Some("{not json"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/movies",
            Some(&too_large),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        // The gateway's own.
        (
            "POST",
            "/api/billing",
            Some("{not json"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/billing",
            Some("[1, 2]"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/billing",
            Some(&too_large),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "DELETE",
            "/api/billing",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        ("GET", "/api/other", None, StatusCode::NOT_FOUND),
        ("GET", "/", None, StatusCode::NOT_FOUND),
    ];
    assert_errors(&stack.gateway, cases).await;
    let filtered = stack
        .call("GET", "/api/movies?title=x'%20OR%201=1--", None)
        .await;
    assert_eq!(filtered, (StatusCode::OK, json!([])));
    assert_eq!(stack.call("GET", "/healthz", None).await.0, StatusCode::OK);
    assert_eq!(stack.call("GET", "/readyz/", None).await.0, StatusCode::OK);
    assert_eq!(queue.message_count().await, 0, "a refused body was queued");
}

#[tokio::test]
async fn unreachable_dependencies_answer_503() {
    let queue = TestQueue::on(free_port());
    let nowhere = free_port();
    let state = AppState::new(
        Upstream::new("inventory-app", "127.0.0.1", nowhere),
        Upstream::new("billing-app", "127.0.0.1", nowhere),
        queue.settings.clone(),
    );
    let gateway = api_gateway::app(state);
    for (method, uri, body) in [
        ("GET", "/api/movies", None),
        ("GET", "/api/billing", None),
        ("POST", "/api/billing", Some(order(1))),
    ] {
        let (status, answer) = call(&gateway, method, uri, body.as_deref()).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {uri}: {answer}"
        );
        assert!(answer["error"].is_string());
    }
}

#[tokio::test]
#[ignore = "starts a private RabbitMQ (needs root and rabbitmq-server); PostgreSQL on 127.0.0.1"]
async fn no_confirmed_order_is_lost_when_rabbitmq_restarts() {
    const ORDERS: usize = 200;
    let rabbit = PrivateRabbit::start();
    let queue = TestQueue::on(rabbit.port);
    let mut stack = Stack::start(&queue).await;
    stack.stop_billing().await;

    // Confirmed while billing-app is down: they wait in the queue.
    let posts = (0..ORDERS).map(|user| {
        let stack = &stack;
        async move {
            stack
                .call("POST", "/api/billing", Some(&order(user)))
                .await
                .0
        }
    });
    let statuses = futures::future::join_all(posts).await;
    assert!(
        statuses.iter().all(|status| *status == StatusCode::OK),
        "{statuses:?}"
    );

    rabbit.stop();
    let (status, answer) = stack
        .call("POST", "/api/billing", Some(&order(ORDERS)))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");

    // The gateway reconnects by itself once the broker is back.
    rabbit.start_again();
    stack.post_order_once_the_broker_is_back(ORDERS).await;
    stack.start_billing_again().await;
    orders_reach(&stack.orders_db, ORDERS + 1).await;

    // And billing-app's consumer reconnects after a restart too.
    rabbit.stop();
    rabbit.start_again();
    stack.post_order_once_the_broker_is_back(ORDERS + 1).await;
    orders_reach(&stack.orders_db, ORDERS + 2).await;
    stack.stop_billing().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and RabbitMQ on 127.0.0.1"]
async fn orders_with_a_bad_number_are_refused_naming_the_field() {
    let queue = TestQueue::new();
    let mut stack = Stack::start(&queue).await;
    stack.stop_billing().await;
    for (body, field) in [
        (
            r#"{"user_id": "abc", "number_of_items": 1, "total_amount": 2}"#,
            "user_id",
        ),
        (
            r#"{"user_id": 1, "number_of_items": "two", "total_amount": 2}"#,
            "number_of_items",
        ),
        (
            r#"{"user_id": 1, "number_of_items": 1, "total_amount": "2,50"}"#,
            "total_amount",
        ),
        (r#"{"user_id": 1, "number_of_items": 1}"#, "total_amount"),
    ] {
        let (status, answer) = stack.call("POST", "/api/billing", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(field), "{body}: {error}");
    }
    assert_eq!(queue.message_count().await, 0, "a refused order was queued");

    // A good one is queued, with a message id billing-app deduplicates by.
    let (status, answer) = stack.call("POST", "/api/billing", Some(&order(1))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (body, properties) = queue.take_one().await.expect("the order is queued");
    assert_eq!(body, order(1).as_bytes());
    let message_id = properties.message_id().as_ref().expect("a message id");
    assert_eq!(message_id.as_str().len(), 36, "{message_id}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL and RabbitMQ on 127.0.0.1"]
async fn an_order_no_queue_takes_is_a_503_not_a_200() {
    let queue = TestQueue::new();
    let mut stack = Stack::start(&queue).await;
    stack.stop_billing().await;
    let (status, answer) = stack.call("POST", "/api/billing", Some(&order(1))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // The gateway declared the queue when it connected; now it is gone.
    queue.delete().await;
    let (status, answer) = stack.call("POST", "/api/billing", Some(&order(2))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
}

/// An upstream that answers each request with the client port of the
/// connection it came on.
async fn connection_reporter() -> (u16, Background) {
    use axum::extract::ConnectInfo;
    use std::net::SocketAddr;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = Router::new().route(
        "/api/movies",
        axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
            axum::Json(json!(peer.port()))
        }),
    );
    let serving = Background::spawn(|stopped| async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stopped)
        .await
        .unwrap();
    });
    (port, serving)
}

#[tokio::test]
async fn upstream_connections_are_renewed_so_new_replicas_get_traffic() {
    let (port, upstream) = connection_reporter().await;
    let state = AppState::new(
        Upstream::new("inventory-app", "127.0.0.1", port),
        Upstream::new("billing-app", "127.0.0.1", port),
        TestQueue::on(free_port()).settings.clone(),
    )
    .with_connection_lifetime(Duration::from_millis(200));
    let gateway = api_gateway::app(state);
    let mut connections = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let (status, peer_port) = call(&gateway, "GET", "/api/movies", None).await;
        assert_eq!(status, StatusCode::OK);
        connections.insert(peer_port.as_u64().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 10 requests over 500 ms: kept alive, but not for ever.
    assert!(
        (2..10).contains(&connections.len()),
        "{} connections",
        connections.len()
    );
    upstream.stop().await;
}
