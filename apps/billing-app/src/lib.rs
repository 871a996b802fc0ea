//! billing-app: consumes `billing_queue` into the `orders` table and lists
//! the orders.

mod order;

use std::future::Future;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::FieldTable;
use service_common::ApiError;
use service_common::amqp::AmqpSettings;
use service_common::backoff::Backoff;
use service_common::config::Env;
use service_common::postgres::{self, DbSettings};
use sqlx::PgPool;

pub use order::{Order, StoredOrder};

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
const POOL_SIZE: u32 = 4;

pub async fn run(env: Env) -> anyhow::Result<()> {
    let config = Config::from_env(&env)?;
    let pool = config.db.lazy_pool(POOL_SIZE);
    migrate_when_reachable(&pool).await?;
    let consumer = tokio::spawn(consume_until(
        config.amqp,
        pool.clone(),
        service_common::http::shutdown_signal(),
    ));
    service_common::http::serve(app(pool), config.port).await?;
    consumer.await?;
    Ok(())
}

/// Applies the migrations, waiting for the database while it is unreachable
/// (it may start after us); any other failure stops the start-up.
pub async fn migrate_when_reachable(pool: &PgPool) -> anyhow::Result<()> {
    postgres::migrate_when_reachable(pool, &sqlx::migrate!()).await
}

pub fn app(pool: PgPool) -> Router {
    let api = Router::new()
        .route("/api/orders", get(list))
        .with_state(pool.clone());
    service_common::http::envelope(api, move || {
        let pool = pool.clone();
        async move { postgres::ping(&pool).await }
    })
}

async fn list(State(pool): State<PgPool>) -> Result<Json<Vec<StoredOrder>>, ApiError> {
    let orders =
        sqlx::query_as("SELECT id, user_id, number_of_items, total_amount FROM orders ORDER BY id")
            .fetch_all(&pool)
            .await?;
    Ok(Json(orders))
}

/// Consumes the queue into the database until `stop` completes, reconnecting
/// with backoff whenever the broker or the database goes away.
pub async fn consume_until(amqp: AmqpSettings, pool: PgPool, stop: impl Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    let mut backoff = Backoff::default();
    loop {
        match consume_session(&amqp, &pool, &mut backoff, stop.as_mut()).await {
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
/// an error when the broker or the database fails. Either way the connection
/// is closed, which hands any unacknowledged message back to the queue.
async fn consume_session(
    amqp: &AmqpSettings,
    pool: &PgPool,
    backoff: &mut Backoff,
    stop: std::pin::Pin<&mut impl Future<Output = ()>>,
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
        backoff.reset();
        let mut batches = consumer.ready_chunks(PREFETCH.into());
        let mut stop = stop;
        loop {
            tokio::select! {
                () = stop.as_mut() => return Ok(()),
                batch = batches.next() => match batch {
                    Some(batch) => store_batch(pool, batch).await?,
                    None => anyhow::bail!("the broker ended the consumer"),
                },
            }
        }
    }
    .await;
    // Best effort: when the broker is gone there is nothing left to close.
    let _ = connection.close(200, "billing-app stopping").await;
    result
}

/// Rejects the malformed deliveries, inserts the others in one statement
/// and, once that is committed, acknowledges them all at once.
async fn store_batch(
    pool: &PgPool,
    batch: Vec<lapin::Result<lapin::message::Delivery>>,
) -> anyhow::Result<()> {
    let mut orders = Vec::with_capacity(batch.len());
    let mut last_stored = None;
    for delivery in batch {
        let delivery = delivery?;
        match Order::parse(&delivery.data) {
            Ok(order) => {
                orders.push(order);
                last_stored = Some(delivery);
            }
            Err(error) => {
                tracing::warn!(%error, body = %String::from_utf8_lossy(&delivery.data), "malformed order rejected");
                delivery
                    .reject(BasicRejectOptions { requeue: false })
                    .await?;
            }
        }
    }
    let Some(last_stored) = last_stored else {
        return Ok(());
    };
    order::insert_all(pool, &orders).await?;
    // Every earlier delivery of this channel is settled already, so one
    // multiple-ack covers exactly this batch.
    last_stored.ack(BasicAckOptions { multiple: true }).await?;
    Ok(())
}
