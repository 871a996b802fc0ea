//! billing-app against a real PostgreSQL and RabbitMQ: each test has its own
//! database and queue.

use std::process::{Child, Command};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use testkit::{Background, TestDb, TestQueue, call, eventually, free_port};

async fn migrated_pool(db: &TestDb) -> sqlx::PgPool {
    let pool = db.settings.lazy_pool(4);
    billing_app::migrate_when_reachable(&pool).await.unwrap();
    pool
}

fn start_consumer(queue: &TestQueue, pool: &sqlx::PgPool) -> Background {
    let (amqp, pool) = (queue.settings.clone(), pool.clone());
    Background::spawn(|stopped| billing_app::consume_until(amqp, pool, stopped))
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
    let pool = migrated_pool(&db).await;
    let consumer = start_consumer(&queue, &pool);
    queue
        .publish(&[
            r#"{"user_id": 3, "number_of_items": 5, "total_amount": 180.5}"#,
            r#"{"user_id": "4", "number_of_items": "2", "total_amount": "20"}"#,
        ])
        .await;
    rows_reach(&db, 2).await;
    consumer.stop().await;

    let (status, orders) = call(&billing_app::app(pool), "GET", "/api/orders/", None).await;
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
async fn poison_messages_are_dropped_and_the_consumer_carries_on() {
    let (db, queue) = (TestDb::create(), TestQueue::new());
    let pool = migrated_pool(&db).await;
    let consumer = start_consumer(&queue, &pool);
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
    // Rejected without requeue: nothing is left to redeliver.
    assert_eq!(queue.message_count().await, 0);
    assert_eq!(
        db.query("SELECT string_agg(user_id::text, ',' ORDER BY id) FROM orders"),
        "1,3"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL and RabbitMQ on 127.0.0.1"]
async fn orders_queued_while_stopped_are_drained_on_start() {
    let (db, queue) = (TestDb::create(), TestQueue::new());
    let pool = migrated_pool(&db).await;
    let orders: Vec<String> = (0..300)
        .map(|user| {
            json!({ "user_id": user, "number_of_items": 1, "total_amount": "9.99" }).to_string()
        })
        .collect();
    queue
        .publish(&orders.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    let consumer = start_consumer(&queue, &pool);
    rows_reach(&db, 300).await;
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
