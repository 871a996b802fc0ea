//! `orchestrator`: parse, run, print the error chain once, exit with its code.

mod cli;
mod commands;
mod ui;

use std::process::ExitCode;

use clap::Parser;
use orchestrator::error::{self, Failure};
use orchestrator::process;
use tokio::signal::unix::{Signal, SignalKind, signal};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("cannot start the async runtime");
    let result = runtime.block_on(async {
        let mut interrupts = Interrupts::new();
        let (result, interrupted) = tokio::select! {
            biased;
            () = interrupts.next() => (Err(Failure::Interrupted.into()), true),
            result = commands::run(cli) => (result, false),
        };
        // The command's future is gone: its children are being stopped
        // (SIGINT, then SIGKILL after a grace period); none may outlive the
        // command. Another Ctrl-C ends the grace period, as cargo does.
        let stopping = process::stopping();
        if interrupted && stopping > 0 {
            let (noun, pronoun) = if stopping == 1 {
                ("process", "it")
            } else {
                ("processes", "them")
            };
            anstream::eprintln!("stopping {stopping} {noun} (Ctrl-C again to kill {pronoun} now)");
        }
        tokio::select! {
            () = process::stopped() => {}
            () = interrupts.next() => {
                process::kill_stopping();
                process::stopped().await;
            }
        }
        commands::release_lock();
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

/// Ctrl-C, or SIGTERM (CI's `timeout`, systemd): both stop the command the
/// same way. Listened to for the whole run, so that no second signal is
/// missed between the first and the wait for the children.
struct Interrupts {
    int: Signal,
    term: Signal,
}

impl Interrupts {
    fn new() -> Self {
        let listen = |kind| signal(kind).expect("cannot handle SIGINT and SIGTERM");
        Interrupts {
            int: listen(SignalKind::interrupt()),
            term: listen(SignalKind::terminate()),
        }
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}
