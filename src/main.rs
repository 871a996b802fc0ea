//! `orchestrator`: parse, run, print the error chain once, exit with its code.

mod cli;
mod commands;
mod ui;

use std::process::ExitCode;

use clap::Parser;
use orchestrator::error::{self, Failure};
use orchestrator::process;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("cannot start the async runtime");
    let result = runtime.block_on(async {
        let result = tokio::select! {
            biased;
            () = interrupted() => Err(Failure::Interrupted.into()),
            result = commands::run(cli) => result,
        };
        // The command's future is gone: its children are being stopped
        // (SIGINT, then SIGKILL); none may outlive the command.
        process::stopped().await;
        result
    });
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            anstream::eprintln!("{}", ui::error_text(&err));
            ExitCode::from(error::exit_code(&err))
        }
    }
}

/// Ctrl-C, or SIGTERM (CI's `timeout`, systemd): both stop the command the same way.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("cannot handle SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
