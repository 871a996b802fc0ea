//! Forwarding a request to an upstream service, status and body unchanged.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
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

/// One client for every upstream: it keeps connections open between
/// requests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(128)
        .tcp_nodelay(true)
        .build()
        .expect("the HTTP client's settings are valid")
}

pub async fn forward(
    client: &reqwest::Client,
    upstream: &Upstream,
    method: Method,
    path_and_query: &str,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let unavailable = |error: reqwest::Error| {
        tracing::warn!(upstream = upstream.name, %error, "upstream unavailable");
        ApiError::Unavailable(format!("{} unavailable", upstream.name))
    };
    let answer = client
        .request(method, format!("{}{path_and_query}", upstream.base_url))
        .headers(end_to_end(headers))
        .body(body)
        .send()
        .await
        .map_err(unavailable)?;
    let status = answer.status();
    let headers = end_to_end(answer.headers().clone());
    let body = answer.bytes().await.map_err(unavailable)?;
    Ok((status, headers, body).into_response())
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
