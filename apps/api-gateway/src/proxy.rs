//! Forwarding a request to an upstream service, status and body unchanged.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, header};
use axum::response::Response;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use service_common::ApiError;
use service_common::config::Env;

/// A service the gateway forwards to.
pub struct Upstream {
    name: &'static str,
    base_url: String,
}

impl Upstream {
    pub fn new(name: &'static str, host: &str, port: u16) -> Self {
        Upstream {
            name,
            base_url: format!("http://{host}:{port}"),
        }
    }

    /// Reads `{prefix}_HOST` and `{prefix}_PORT` (8080).
    pub fn from_env(env: &Env, name: &'static str, prefix: &str) -> anyhow::Result<Self> {
        let host = env.required(&format!("{prefix}_HOST"))?;
        let port = env.parsed_or(&format!("{prefix}_PORT"), 8080)?;
        Ok(Upstream::new(name, &host, port))
    }
}

/// The client for every upstream: plain HTTP/1.1 that keeps connections
/// open between requests, each pool of them for a bounded lifetime only.
/// kube-proxy balances a Service per connection: connections kept forever
/// would keep all traffic on the replicas that existed when they opened, and
/// the replicas the HPA adds would receive none.
pub struct Client {
    lifetime: Duration,
    pool: Mutex<(Instant, Pool)>,
}

type Pool = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

/// How long the gateway keeps its upstream connections by default.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

impl Client {
    pub fn new(lifetime: Duration) -> Self {
        Client {
            lifetime,
            pool: Mutex::new((Instant::now(), new_pool())),
        }
    }

    /// The current pool; past its lifetime, a fresh one replaces it. The old
    /// pool closes its connections once the requests using them are done.
    fn pool(&self) -> Pool {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.0.elapsed() >= self.lifetime {
            *pool = (Instant::now(), new_pool());
        }
        pool.1.clone()
    }
}

fn new_pool() -> Pool {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(128)
        .build(connector)
}

/// How long an upstream may take to start its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends the request on to `upstream` and streams its answer back as it is.
pub async fn forward(
    client: &Client,
    upstream: &Upstream,
    method: Method,
    path_and_query: &str,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let unavailable = |error: &dyn std::fmt::Display| {
        tracing::warn!(upstream = upstream.name, %error, "upstream unavailable");
        ApiError::Unavailable(format!("{} unavailable", upstream.name))
    };
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = format!("{}{path_and_query}", upstream.base_url)
        .parse()
        .map_err(|_| ApiError::BadRequest("invalid path".into()))?;
    *request.headers_mut() = end_to_end(headers);
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, client.pool().request(request))
        .await
        .map_err(|elapsed| unavailable(&elapsed))?
        .map_err(|error| unavailable(&error))?;
    let (mut parts, body) = answer.into_parts();
    parts.headers = end_to_end(parts.headers);
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// The headers meant for the other end, without those that describe one
/// connection (RFC 9110 §7.6.1) or that the next hop sets itself.
fn end_to_end(mut headers: HeaderMap) -> HeaderMap {
    for name in [
        header::CONNECTION,
        header::HOST,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_headers_are_dropped_and_others_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "keep-alive".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert(header::HOST, "gateway:3000".parse().unwrap());
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let kept = end_to_end(headers);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[header::CONTENT_TYPE], "application/json");
    }
}
