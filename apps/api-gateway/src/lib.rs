//! api-gateway: the stack's one entry point. Proxies the movies API to
//! inventory-app, queues billing orders on RabbitMQ, and shows billing-app's
//! order list.

mod proxy;
mod publisher;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::{any, get};
use axum::{Json, Router};
use service_common::ApiError;
use service_common::amqp::AmqpSettings;
use service_common::config::Env;
use service_common::extract::RawBody;
use service_common::order::Order;

pub use proxy::Upstream;
pub use publisher::Publisher;

pub struct Config {
    pub inventory: Upstream,
    pub billing: Upstream,
    pub amqp: AmqpSettings,
    pub port: u16,
}

impl Config {
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        Ok(Config {
            inventory: Upstream::from_env(env, "inventory-app", "INVENTORY_APP")?,
            billing: Upstream::from_env(env, "billing-app", "BILLING_APP")?,
            amqp: AmqpSettings::from_env(env)?,
            port: env.parsed_or("APIGATEWAY_PORT", 3000)?,
        })
    }
}

pub async fn run(env: Env) -> anyhow::Result<()> {
    let config = Config::from_env(&env)?;
    let state = AppState::new(config.inventory, config.billing, config.amqp);
    let router = app(state.clone());
    let served = service_common::http::serve(router, config.port).await;
    state.publisher.close().await;
    served
}

#[derive(Clone)]
pub struct AppState {
    http: std::sync::Arc<proxy::Client>,
    inventory: std::sync::Arc<Upstream>,
    billing: std::sync::Arc<Upstream>,
    publisher: std::sync::Arc<Publisher>,
}

impl AppState {
    pub fn new(inventory: Upstream, billing: Upstream, amqp: AmqpSettings) -> Self {
        AppState {
            http: proxy::Client::new(proxy::CONNECTION_LIFETIME).into(),
            inventory: inventory.into(),
            billing: billing.into(),
            publisher: Publisher::new(amqp).into(),
        }
    }

    /// Upstream connections are replaced after `lifetime` (30 s otherwise).
    pub fn with_connection_lifetime(mut self, lifetime: std::time::Duration) -> Self {
        self.http = proxy::Client::new(lifetime).into();
        self
    }
}

pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/movies", any(movies))
        .route("/api/movies/{*rest}", any(movies))
        .route("/api/billing", get(orders).post(queue_order))
        .with_state(state);
    // The gateway is ready as soon as it serves: each route reports its own
    // dependency's absence, and an unready gateway would hide them all.
    service_common::http::envelope(api, || async { Ok(()) })
}

async fn movies(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let path = uri
        .path_and_query()
        .map_or(uri.path(), |path| path.as_str());
    proxy::forward(&state.http, &state.inventory, method, path, headers, body).await
}

async fn orders(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let path = match uri.query() {
        Some(query) => format!("/api/orders?{query}"),
        None => "/api/orders".to_owned(),
    };
    let no_body = Bytes::new();
    proxy::forward(
        &state.http,
        &state.billing,
        Method::GET,
        &path,
        headers,
        no_body,
    )
    .await
}

/// Queues an order for billing-app and answers once the broker has
/// confirmed it is stored. An order billing-app could not use is refused
/// here, naming the field, and never queued.
async fn queue_order(
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> Result<Json<serde_json::Value>, ApiError> {
    Order::parse(&body).map_err(ApiError::BadRequest)?;
    state.publisher.publish(&body).await?;
    Ok(Json(serde_json::json!({ "message": "order queued" })))
}
