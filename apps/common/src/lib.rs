//! What the three services share, so each of them holds only its own logic:
//! JSON errors and the extractors that produce them, the HTTP envelope every
//! service gets (health probes, body limit, trailing slashes, 404/405 in JSON),
//! serving with graceful shutdown, logging, and configuration from the
//! environment.

pub mod backoff;
pub mod config;
pub mod error;
pub mod extract;
pub mod http;

#[cfg(feature = "amqp")]
pub mod amqp;
#[cfg(feature = "order")]
pub mod order;
#[cfg(feature = "postgres")]
pub mod postgres;

pub use error::ApiError;

/// Logs go to stdout, one line per event; `RUST_LOG` tunes the level.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let on_terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(on_terminal)
        .init();
}

/// The body of each service's `main`: logging, then `run` with the process
/// environment; an error is logged once, with its causes, and exits 1.
pub async fn main_with<F, Fut>(run: F) -> std::process::ExitCode
where
    F: FnOnce(config::Env) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    init_tracing();
    match run(config::Env::default()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
