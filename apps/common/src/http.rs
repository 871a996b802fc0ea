//! The HTTP envelope every service shares, and serving it until SIGTERM.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use tower_http::normalize_path::NormalizePathLayer;
use tower_layer::Layer;

use crate::ApiError;
use crate::config::Env;

/// Set when the process is told to stop: `/readyz` answers 503 from then on,
/// while the server still serves for the drain delay (see [`serve`]).
static DRAINING: AtomicBool = AtomicBool::new(false);

/// Request bodies past this size are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Wraps a service's API routes with `/healthz`, `/readyz` (answered by
/// `ready`), the body limit, JSON 404 and 405, and trailing-slash tolerance.
pub fn envelope<F, Fut>(api: Router, ready: F) -> Router
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ApiError>> + Send + 'static,
{
    let routes = api
        .route("/healthz", get(|| async { StatusCode::OK }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if DRAINING.load(Ordering::Relaxed) {
                        return Err(ApiError::Unavailable("shutting down".into()));
                    }
                    ready().await.map(|()| StatusCode::OK)
                }
            }),
        )
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    // Routing happens inside the wrapped router, so the path it sees is
    // already trimmed: `/api/movies/` matches `/api/movies`.
    let trimmed = NormalizePathLayer::trim_trailing_slash().layer(routes);
    Router::new().fallback_service(trimmed)
}

/// Serves `router` on 0.0.0.0:`port` until SIGTERM or Ctrl-C, letting
/// requests in flight finish.
///
/// After the signal it keeps accepting connections for `SHUTDOWN_DELAY_SECS`
/// (0 when unset), with `/readyz` at 503: in Kubernetes the kubelet's SIGTERM
/// and the removal of the pod from the Service's endpoints happen at the same
/// time, so a client routed by a kube-proxy rule not yet updated would
/// otherwise meet a closed port. The manifests set it (app-config); it is the
/// preStop pause done by the binary itself, as the images have no shell for a
/// `preStop: exec: sleep` and the API servers before 1.30 have no `preStop:
/// sleep`.
pub async fn serve(router: Router, port: u16) -> anyhow::Result<()> {
    let delay = Duration::from_secs(Env::default().parsed_or("SHUTDOWN_DELAY_SECS", 0u64)?);
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("cannot listen on port {port}"))?;
    tracing::info!(port, "listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            DRAINING.store(true, Ordering::Relaxed);
            if !delay.is_zero() {
                tracing::info!(
                    seconds = delay.as_secs(),
                    "still serving while the endpoints drop this replica"
                );
                tokio::time::sleep(delay).await;
            }
        })
        .await
        .context("server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C; each caller gets its own notification.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c()
            .await
            .expect("cannot listen for Ctrl-C");
    };
    let terminate = async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("cannot listen for SIGTERM")
            .recv()
            .await;
    };
    tokio::select! {
        () = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
