//! The HTTP envelope every service shares, and serving it until SIGTERM.

use std::future::Future;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use tower_http::normalize_path::NormalizePathLayer;
use tower_layer::Layer;

use crate::ApiError;

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
                async move { ready().await.map(|()| StatusCode::OK) }
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
pub async fn serve(router: Router, port: u16) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("cannot listen on port {port}"))?;
    tracing::info!(port, "listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
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
