use std::net::Ipv4Addr;

use orchestrator::dashboard::server::{self, Dashboard};
use orchestrator::dashboard::{self, Monitor, Source, Timing};
use orchestrator::kubeapi;
use orchestrator::state::random_hex;

use super::Context;
use crate::cli::DashboardArgs;

pub async fn run(ctx: &Context, args: DashboardArgs) -> anyhow::Result<()> {
    let connection = kubeapi::connect(&args.target.into()).await?;
    // Loopback only: the page is for this machine's user (and its projector).
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, args.port))
        .await
        .map_err(|err| {
            anyhow::anyhow!(
                "cannot listen on 127.0.0.1:{}: {err} (choose another with --port)",
                args.port
            )
        })?;
    let token = random_hex(16);
    let url = format!("http://{}/?token={token}", listener.local_addr()?);
    let source = Source {
        client: connection.client,
        cluster: connection.description.clone(),
        namespace: ctx.config.deploy.namespace.clone(),
        verify_file: dashboard::last_verify_file(&ctx.state),
    };
    let monitor = Monitor::start(source, Timing::default()).await;
    println!(
        "dashboard of namespace {} on {}:\n  {url}\n(read-only; Ctrl-C stops it)",
        ctx.config.deploy.namespace, connection.description
    );
    if !args.no_open {
        open_in_browser(&url);
    }
    axum::serve(listener, server::router(Dashboard { token, monitor })).await?;
    Ok(())
}

/// Best effort: without a browser opener the printed URL is the way in.
fn open_in_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let started = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if started.is_err() {
        println!("(could not start {opener}: open the URL above in a browser)");
    }
}
