//! `orchestrator`: parse, run, print the error chain once, exit with its code.

mod cli;
mod commands;
mod ui;

use std::process::ExitCode;

use clap::Parser;
use orchestrator::error::{self, Failure};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("cannot start the async runtime");
    let result = runtime.block_on(async {
        // Ctrl-C first: children die of the same signal, and their failure must
        // not win the race and be reported as the cause.
        tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => Err(Failure::Interrupted.into()),
            result = commands::run(cli) => result,
        }
    });
    // Do not wait for blocking threads (child processes get their own Ctrl-C).
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", ui::error_text(&err));
            ExitCode::from(error::exit_code(&err))
        }
    }
}
