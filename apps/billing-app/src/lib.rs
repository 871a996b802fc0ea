//! billing-app: consumes `billing_queue` into the `orders` table and lists
//! the orders.

mod order;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::FieldTable;
use service_common::ApiError;
use service_common::amqp::AmqpSettings;
use service_common::backoff::Backoff;
use service_common::config::Env;
use service_common::order::Order;
use service_common::postgres::{Database, DbSettings, Embedded, is_unreachable};
use sqlx::PgPool;

use order::Delivered;
pub use order::StoredOrder;

pub struct Config {
    pub db: DbSettings,
    pub amqp: AmqpSettings,
    pub port: u16,
}

impl Config {
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        Ok(Config {
            db: DbSettings::from_env(env, "BILLING")?,
            amqp: AmqpSettings::from_env(env)?,
            port: env.parsed_or("BILLING_APP_PORT", 8080)?,
        })
    }
}

/// Deliveries in flight at once, and so the largest batch committed at once.
const PREFETCH: u16 = 200;
/// How long a stop waits for the batch in hand to be stored and acknowledged.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
const POOL_SIZE: u32 = 4;

/// What billing-app's HTTP side and its consumer share: the database, and
/// whether the consumer is attached to the queue.
#[derive(Clone)]
pub struct Billing {
    db: Database,
    consuming: Arc<AtomicBool>,
}

impl Billing {
    pub fn new(pool: PgPool) -> Self {
        Billing {
            db: Database::new(pool),
            consuming: Arc::default(),
        }
    }

    /// Ready once the schema is migrated, the database answers and the
    /// consumer is attached to the queue.
    async fn ready(&self) -> Result<(), ApiError> {
        self.db.ready().await?;
        if !self.consuming.load(Ordering::Relaxed) {
            return Err(ApiError::Unavailable("not consuming the queue".into()));
        }
        Ok(())
    }
}

pub async fn run(env: Env) -> anyhow::Result<()> {
    let config = Config::from_env(&env)?;
    let billing = Billing::new(config.db.lazy_pool(POOL_SIZE));
    // Served at once: /healthz answers while the database or the broker is
    // still away, /readyz once both are there.
    tokio::spawn(migrate(billing.clone()));
    let consumer = tokio::spawn(consume_until(
        config.amqp,
        billing.clone(),
        service_common::http::shutdown_signal(),
    ));
    service_common::http::serve(app(billing), config.port).await?;
    consumer.await?;
    Ok(())
}

const MIGRATIONS: Embedded = Embedded(&[
    (
        "0001_orders.sql",
        include_str!("../migrations/0001_orders.sql"),
    ),
    (
        "0002_orders_message_id.sql",
        include_str!("../migrations/0002_orders_message_id.sql"),
    ),
]);

/// Applies the migrations, retrying until the database takes them.
pub async fn migrate(billing: Billing) {
    billing.db.migrate(MIGRATIONS).await
}

pub fn app(billing: Billing) -> Router {
    let api = Router::new()
        .route("/api/orders", get(list))
        .with_state(billing.db.pool.clone());
    service_common::http::envelope(api, move || {
        let billing = billing.clone();
        async move { billing.ready().await }
    })
}

async fn list(State(pool): State<PgPool>) -> Result<Json<Vec<StoredOrder>>, ApiError> {
    let orders =
        sqlx::query_as("SELECT id, user_id, number_of_items, total_amount FROM orders ORDER BY id")
            .fetch_all(&pool)
            .await?;
    Ok(Json(orders))
}

/// Consumes the queue into the database until `stop` completes, once the
/// schema is migrated, reconnecting with backoff whenever the broker goes
/// away.
pub async fn consume_until(amqp: AmqpSettings, billing: Billing, stop: impl Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    tokio::select! {
        () = stop.as_mut() => return,
        () = billing.db.migrated() => {}
    }
    let mut backoff = Backoff::default();
    loop {
        let session = consume_session(&amqp, &billing, &mut backoff, stop.as_mut()).await;
        billing.consuming.store(false, Ordering::Relaxed);
        match session {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "consumer interrupted, reconnecting")
            }
        }
        tokio::select! {
            () = stop.as_mut() => return,
            () = backoff.wait() => {}
        }
    }
}

/// One connection's worth of consuming: returns `Ok` once `stop` completes,
/// an error when the broker fails. Either way the connection is closed,
/// which hands any unacknowledged message back to the queue.
async fn consume_session(
    amqp: &AmqpSettings,
    billing: &Billing,
    backoff: &mut Backoff,
    mut stop: Pin<&mut impl Future<Output = ()>>,
) -> anyhow::Result<()> {
    let connection = amqp.connect("billing-app").await?;
    let result = async {
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(PREFETCH, BasicQosOptions::default())
            .await?;
        amqp.declare_queue(&channel).await?;
        let consumer = channel
            .basic_consume(
                &amqp.queue,
                "billing-app",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = %amqp.queue, "consuming");
        billing.consuming.store(true, Ordering::Relaxed);
        backoff.reset();
        let mut batches = consumer.ready_chunks(PREFETCH.into());
        loop {
            let batch = tokio::select! {
                () = stop.as_mut() => return Ok(()),
                batch = batches.next() => batch,
            };
            let Some(batch) = batch else {
                anyhow::bail!("the broker ended the consumer");
            };
            let batch = batch.into_iter().collect::<lapin::Result<Vec<_>>>()?;
            let store = store_batch(&billing.db.pool, batch);
            tokio::pin!(store);
            tokio::select! {
                stored = &mut store => stored?,
                () = stop.as_mut() => {
                    // A clean stop lets the batch in hand be stored and
                    // acknowledged; one that cannot finish (the database is
                    // away) is redelivered later, and stored once thanks to
                    // its message id.
                    let _ = tokio::time::timeout(STOP_GRACE, store).await;
                    return Ok(());
                }
            }
        }
    }
    .await;
    // Best effort: when the broker is gone there is nothing left to close.
    let _ = connection.close(200, "billing-app stopping").await;
    result
}

/// Dead-letters the unusable deliveries, inserts the others in one
/// statement and, once that is committed, acknowledges them all at once.
/// While the database is unreachable the batch waits, held unacknowledged:
/// no reconnect, no redelivery.
async fn store_batch(pool: &PgPool, batch: Vec<Delivery>) -> anyhow::Result<()> {
    let mut orders = Vec::with_capacity(batch.len());
    let mut deliveries = Vec::with_capacity(batch.len());
    for delivery in batch {
        match Order::parse(&delivery.data) {
            Ok(order) => {
                let message_id = delivery.properties.message_id().as_ref();
                orders.push(Delivered {
                    order,
                    message_id: message_id.map(|id| id.to_string()),
                });
                deliveries.push(delivery);
            }
            Err(error) => dead_letter(&delivery, &error).await?,
        }
    }
    let Some(last) = deliveries.last() else {
        return Ok(());
    };
    match insert_when_reachable(pool, &orders).await {
        Ok(()) => {
            // Every earlier delivery of this channel is settled already, so
            // one multiple-ack covers exactly this batch.
            last.ack(BasicAckOptions { multiple: true }).await?;
        }
        Err(error) => {
            // An order the table refuses fails the whole statement: each is
            // tried alone, and only those refused again are dead-lettered,
            // rather than the batch redelivered forever.
            tracing::warn!(%error, "batch refused, storing its orders one by one");
            for (order, delivery) in orders.iter().zip(&deliveries) {
                match insert_when_reachable(pool, std::slice::from_ref(order)).await {
                    Ok(()) => delivery.ack(BasicAckOptions::default()).await?,
                    Err(error) => dead_letter(delivery, &error.to_string()).await?,
                }
            }
        }
    }
    Ok(())
}

/// Inserts, retrying with backoff while the database is unreachable; any
/// other error is the database refusing these orders.
async fn insert_when_reachable(pool: &PgPool, orders: &[Delivered]) -> Result<(), sqlx::Error> {
    let mut backoff = Backoff::default();
    loop {
        match order::insert_all(pool, orders).await {
            Err(error) if is_unreachable(&error) => {
                tracing::warn!(%error, "database unreachable, the batch waits");
                backoff.wait().await;
            }
            result => return result,
        }
    }
}

/// Rejects without requeue: the queue's dead-letter queue keeps it.
async fn dead_letter(delivery: &Delivery, error: &str) -> lapin::Result<()> {
    tracing::warn!(error, body = %String::from_utf8_lossy(&delivery.data), "order dead-lettered");
    delivery.reject(BasicRejectOptions { requeue: false }).await
}
