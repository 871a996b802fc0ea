//! billing-app against a real PostgreSQL and RabbitMQ: each test has its own
//! database and queue.

use std::process::{Child, Command};
use std::time::Duration;

use axum::http::StatusCode;
use billing_app::Billing;
use serde_json::json;
use testkit::{
    Background, PrivatePostgres, ServiceProcess, TestDb, TestQueue, amqp_env, call, db_env,
    eventually, free_port,
};

async fn migrated(db: &TestDb) -> Billing {
    let billing = Billing::new(db.settings.lazy_pool(4));
    billing_app::migrate(billing.clone()).await;
    billing
}

fn start_consumer(queue: &TestQueue, billing: &Billing) -> Background {
    let (amqp, billing) = (queue.settings.clone(), billing.clone());
    Background::spawn(|stopped| billing_app::consume_until(amqp, billing, stopped))
}

async fn rows_reach(db: &TestDb, expected: usize) {
    let what = format!("{expected} orders");
    eventually(&what, Duration::from_secs(30), || async {
        db.count("orders") >= expected
    })
    .await;
    assert_eq!(db.count("orders"), expected);
}

#[tokio::test]
#[ignore = "needs PostgreSQL and RabbitMQ on 127.0.0.1"]
async fn orders_are_stored_from_numbers_or_strings_and_listed() {
    let (db, queue) = (TestDb::create(), TestQueue::new());
    let billing = migrated(&db).await;
    let consumer = start_consumer(&queue, &billing);
    queue
        .publish(&[
            r#"{"user_id": 3, "number_of_items": 5, "total_amount": 180.5}"#,
            r#"{"user_id": "4", "number_of_items": "2", "total_amount": "20"}"#,
        ])
        .await;
    rows_reach(&db, 2).await;
    consumer.stop().await;

    let (status, orders) = call(&billing_app::app(billing), "GET", "/api/orders/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        orders,
        json!([
            { "id": 1, "user_id": 3, "number_of_items": 5, "total_amount": "180.50" },
            { "id": 2, "user_id": 4, "number_of_items": 2, "total_amount": "20.00" },
        ])
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL and RabbitMQ on 127.0.0.1"]
async fn poison_messages_are_dead_lettered_and_the_consumer_carries_on() {
    let (db, queue) = (TestDb::create(), TestQueue::new());
    let billing = migrated(&db).await;
    let consumer = start_consumer(&queue, &billing);
    queue
        .publish(&[
            "not json at all",
            r#"{"user_id": 1, "number_of_items": 1, "total_amount": 10}"#,
            r#"{"user_id": "one", "number_of_items": 1, "total_amount": 10}"#,
            r#"{"user_id": 2, "number_of_items": 1, "total_amount": 1e20}"#,
        ])
        .await;
    rows_reach(&db, 1).await;
    // After the poison, later orders still arrive.
    queue
        .publish(&[r#"{"user_id": 3, "number_of_items": 1, "total_amount": 10}"#])
        .await;
    rows_reach(&db, 2).await;
    consumer.stop().await;
    // Rejected without requeue: nothing is left to redeliver, and the
    // dead-letter queue keeps the three for a human to look at.
    assert_eq!(queue.message_count().await, 0);
    assert_eq!(queue.dead_letter_count().await, 3);
    assert_eq!(
        db.query("SELECT string_agg(user_id::text, ',' ORDER BY id) FROM orders"),
        "1,3"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL and RabbitMQ on 127.0.0.1"]
async fn orders_queued_while_stopped_are_drained_on_start() {
    let (db, queue) = (TestDb::create(), TestQueue::new());
    let billing = migrated(&db).await;
    let orders: Vec<String> = (0..300)
        .map(|user| {
            json!({ "user_id": user, "number_of_items": 1, "total_amount": "9.99" }).to_string()
        })
        .collect();
    queue
        .publish(&orders.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    let consumer = start_consumer(&queue, &billing);
    rows_reach(&db, 300).await;
    consumer.stop().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and RabbitMQ on 127.0.0.1"]
async fn a_redelivered_order_is_stored_once() {
    let (db, queue) = (TestDb::create(), TestQueue::new());
    let billing = migrated(&db).await;
    let order = r#"{"user_id": 7, "number_of_items": 1, "total_amount": 10}"#;
    let id = Some("2f1d4c1e-8a4b-4c3e-9f57-6a0b1c2d3e4f");
    // Twice in one batch, and once more after it was stored (its ack lost).
    queue
        .publish_with_ids(&[(order, id), (order, id), (order, None)])
        .await;
    let consumer = start_consumer(&queue, &billing);
    rows_reach(&db, 2).await;
    queue.publish_with_ids(&[(order, id)]).await;
    eventually("the queue to drain", Duration::from_secs(10), || async {
        queue.message_count().await == 0
    })
    .await;
    consumer.stop().await;
    // The order without an id is a different one: nothing to tell it apart.
    assert_eq!(db.count("orders"), 2);
    assert_eq!(
        db.query("SELECT count(*) FROM orders WHERE message_id IS NOT NULL"),
        "1"
    );
    // A redelivery is a success to acknowledge, not a failure to set aside
    // (the unique index alone would refuse it into the dead-letter queue).
    assert_eq!(queue.dead_letter_count().await, 0);
}

#[tokio::test]
#[ignore = "needs PostgreSQL and RabbitMQ on 127.0.0.1"]
async fn an_order_the_table_refuses_is_dead_lettered_not_redelivered_forever() {
    let (db, queue) = (TestDb::create(), TestQueue::new());
    let billing = migrated(&db).await;
    // A rule the parser does not know: only the database refuses the order.
    db.query("ALTER TABLE orders ADD CONSTRAINT positive_user CHECK (user_id > 0)");
    queue
        .publish(&[
            r#"{"user_id": 1, "number_of_items": 1, "total_amount": 10}"#,
            r#"{"user_id": -2, "number_of_items": 1, "total_amount": 10}"#,
            r#"{"user_id": 3, "number_of_items": 1, "total_amount": 10}"#,
        ])
        .await;
    let consumer = start_consumer(&queue, &billing);
    rows_reach(&db, 2).await;
    eventually(
        "the refused order dead-lettered",
        Duration::from_secs(10),
        || async { queue.dead_letter_count().await == 1 },
    )
    .await;
    consumer.stop().await;
    assert_eq!(queue.message_count().await, 0);
    assert_eq!(
        db.query("SELECT string_agg(user_id::text, ',' ORDER BY id) FROM orders"),
        "1,3"
    );
}

#[tokio::test]
#[ignore = "starts a private PostgreSQL (needs root, PostgreSQL 15 binaries); RabbitMQ on 127.0.0.1"]
async fn a_database_outage_holds_the_batch_without_reconnecting() {
    let server = PrivatePostgres::start();
    let db = TestDb::create_on(server.port);
    let queue = TestQueue::new();
    let billing = migrated(&db).await;
    let consumer = start_consumer(&queue, &billing);
    eventually(
        "the consumer to attach",
        Duration::from_secs(10),
        || async { queue.counts(&queue.settings.queue).await.1 == 1 },
    )
    .await;

    server.stop();
    queue
        .publish(&[r#"{"user_id": 1, "number_of_items": 1, "total_amount": 10}"#])
        .await;
    eventually(
        "the order to be delivered",
        Duration::from_secs(10),
        || async { queue.message_count().await == 0 },
    )
    .await;
    // The order waits, unacknowledged, with the consumer that holds it: it
    // is never handed back to the queue by a reconnect.
    let watch_until = std::time::Instant::now() + Duration::from_secs(8);
    while std::time::Instant::now() < watch_until {
        let (ready, consumers) = queue.counts(&queue.settings.queue).await;
        assert_eq!(
            (ready, consumers),
            (0, 1),
            "the consumer let go of the order"
        );
    }

    server.start_again();
    rows_reach(&db, 1).await;
    consumer.stop().await;
}

/// The billing-app binary, configured through its environment as in a pod.
fn spawn_billing_app(db: &TestDb, queue: &TestQueue) -> Child {
    Command::new(env!("CARGO_BIN_EXE_billing-app"))
        .env_clear()
        .env("BILLING_DB_HOST", &db.settings.host)
        .env("BILLING_DB_PORT", db.settings.port.to_string())
        .env("BILLING_DB_USER", &db.settings.user)
        .env("BILLING_DB_PASSWORD", db.settings.password.expose())
        .env("BILLING_DB_NAME", &db.settings.database)
        .env("RABBITMQ_HOST", &queue.settings.host)
        .env("RABBITMQ_PORT", queue.settings.port.to_string())
        .env("RABBITMQ_USER", &queue.settings.user)
        .env("RABBITMQ_PASSWORD", queue.settings.password.expose())
        .env("RABBITMQ_QUEUE", &queue.settings.queue)
        .env("BILLING_APP_PORT", free_port().to_string())
        .spawn()
        .expect("cannot start billing-app")
}

#[tokio::test]
#[ignore = "needs PostgreSQL and RabbitMQ on 127.0.0.1"]
async fn no_order_is_lost_when_billing_app_is_killed_mid_stream() {
    const ORDERS: usize = 5_000;
    let (db, queue) = (TestDb::create(), TestQueue::new());
    let orders: Vec<String> = (0..ORDERS)
        .map(|user| json!({ "user_id": user, "number_of_items": 1, "total_amount": 1 }).to_string())
        .collect();
    queue
        .publish(&orders.iter().map(String::as_str).collect::<Vec<_>>())
        .await;

    let mut billing = spawn_billing_app(&db, &queue);
    eventually("the first orders", Duration::from_secs(30), || async {
        db.query("SELECT count(*) > 0 FROM pg_tables WHERE tablename = 'orders'") == "t"
            && db.count("orders") > 0
    })
    .await;
    billing.kill().unwrap();
    billing.wait().unwrap();
    let stored_at_kill = db.count("orders");

    let mut billing = spawn_billing_app(&db, &queue);
    let distinct = "SELECT count(DISTINCT user_id) FROM orders";
    eventually("every order", Duration::from_secs(60), || async {
        db.query(distinct) == ORDERS.to_string()
    })
    .await;
    billing.kill().unwrap();
    billing.wait().unwrap();
    // At least once: duplicates are allowed, losses are not.
    assert!(db.count("orders") >= ORDERS);
    eprintln!("killed with {stored_at_kill} of {ORDERS} orders stored");
}

#[test]
fn a_missing_variable_is_named_at_start_up() {
    let output = Command::new(env!("CARGO_BIN_EXE_billing-app"))
        .env_clear()
        .env("BILLING_DB_HOST", "localhost")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(logs.contains("BILLING_DB_USER is not set"), "{logs}");
}

#[tokio::test]
#[ignore = "starts a private PostgreSQL (needs root, PostgreSQL 15 binaries); RabbitMQ on 127.0.0.1"]
async fn starts_before_its_database_and_becomes_ready_once_it_is_up() {
    let server = PrivatePostgres::start();
    let db = TestDb::create_on(server.port);
    let queue = TestQueue::new();
    server.stop();
    queue
        .publish(&[r#"{"user_id": 1, "number_of_items": 1, "total_amount": 10}"#])
        .await;

    let mut env = db_env("BILLING", &db.settings);
    env.extend(amqp_env(&queue.settings));
    let mut billing =
        ServiceProcess::spawn(env!("CARGO_BIN_EXE_billing-app"), "BILLING_APP_PORT", env);
    // Alive at once, so liveness never restarts it; not ready without its database.
    eventually("/healthz to answer", Duration::from_secs(5), || async {
        billing.status("/healthz") == Some(200)
    })
    .await;
    assert_eq!(billing.status("/readyz"), Some(503));
    tokio::time::sleep(Duration::from_secs(2)).await;
    billing.assert_running();
    assert_eq!(billing.status("/readyz"), Some(503));

    server.start_again();
    eventually("/readyz to answer 200", Duration::from_secs(20), || async {
        billing.status("/readyz") == Some(200)
    })
    .await;
    rows_reach(&db, 1).await;
    billing.assert_running();
}
