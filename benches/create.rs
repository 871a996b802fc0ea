//! Wall time of `create` with a fake `vagrant` whose every `up` and
//! `provision` takes a fixed delay, against the sum of those delays run one
//! after another (what a sequential `vagrant up` would cost). Prints figures,
//! asserts nothing about time.
//!
//! The node wait needs an API server: kube-sim's kubeconfig stands for the
//! master's (`KUBE_SIM_KUBECONFIG`, default /tmp/kube-sim/kubeconfig).
//!
//! Run with: `cargo bench --bench create` (optional: `BENCH_DELAY_SECS`, `BENCH_RUNS`)

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::vagrant::Sandbox;

fn main() {
    let kubeconfig = std::env::var_os("KUBE_SIM_KUBECONFIG")
        .map_or_else(|| PathBuf::from("/tmp/kube-sim/kubeconfig"), PathBuf::from);
    if !kubeconfig.exists() {
        eprintln!(
            "{} not found: start kube-sim (/work/shared/kube-sim/up.sh) or set KUBE_SIM_KUBECONFIG",
            kubeconfig.display()
        );
        std::process::exit(2);
    }
    let delay: f64 = std::env::var("BENCH_DELAY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);

    println!("create with a fake vagrant: {delay}s per `up` and per `provision`, {runs} runs each");
    println!(
        "{:>6} {:>14} {:>12} {:>12} {:>7}",
        "agents", "sequential sum", "best", "median", "ratio"
    );
    // kube-sim has the nodes `master` and `agent`: one agent is what it can show Ready.
    let agents = 1u8;
    let sequential = 2.0 * (f64::from(agents) + 1.0) * delay;
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| create_once(&kubeconfig, agents, delay))
        .collect();
    times.sort();
    let best = times[0].as_secs_f64();
    let median = times[times.len() / 2].as_secs_f64();
    println!(
        "{agents:>6} {sequential:>13.2}s {best:>11.2}s {median:>11.2}s {:>7.2}",
        median / sequential
    );
}

/// One `create` from nothing (box already installed), timed.
fn create_once(kubeconfig: &std::path::Path, agents: u8, delay: f64) -> Duration {
    let config = format!(
        "[cluster]\nagents = {agents}\nmaster_ip = \"127.0.0.1\"\nready_timeout_secs = 30\n"
    );
    let mut sandbox = Sandbox::new(&config);
    sandbox
        .env("FAKE_VAGRANT_K3S_YAML", kubeconfig.to_str().unwrap())
        .env("FAKE_VAGRANT_DELAY", &delay.to_string());
    std::fs::write(
        sandbox.vagrant_state.join("boxes"),
        "bento/ubuntu-24.04 (virtualbox, 202502.21.0)\n",
    )
    .unwrap();
    let started = Instant::now();
    let run = sandbox.run(&["create"]);
    let took = started.elapsed();
    run.expect_code(0);
    took
}
