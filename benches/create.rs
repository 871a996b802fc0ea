//! Wall time of `create`'s VM work (boots and provisioning, until the node
//! wait starts) with a fake `vagrant` whose every `up` and `provision` takes a
//! fixed delay, for 1 and 3 agents, against the sum of those delays run one
//! after another (a sequential `vagrant up`) and against the best the boot
//! order allows with VirtualBox: the master boots alone (1 delay), then its
//! provisioning runs beside each agent's boot and join (2 delays) — 3 delays
//! whatever the number of agents. Prints figures, asserts nothing about time.
//!
//! Run with: `cargo bench --bench create` (optional: `BENCH_DELAY_SECS`, `BENCH_RUNS`)

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use support::vagrant::Sandbox;

fn main() {
    let delay: f64 = std::env::var("BENCH_DELAY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);

    println!(
        "create's VM work with a fake vagrant (VirtualBox order): {delay}s per `up` and per `provision`, {runs} runs each"
    );
    println!(
        "{:>6} {:>11} {:>9} {:>9} {:>9} {:>14} {:>11}",
        "agents", "sequential", "best", "median", "ideal", "median/seq", "median/ideal"
    );
    for agents in [1u8, 3] {
        let sequential = 2.0 * (f64::from(agents) + 1.0) * delay;
        let ideal = 3.0 * delay;
        let mut times: Vec<Duration> = (0..runs).map(|_| vm_work(agents, delay)).collect();
        times.sort();
        let best = times[0].as_secs_f64();
        let median = times[times.len() / 2].as_secs_f64();
        println!(
            "{agents:>6} {sequential:>10.2}s {best:>8.2}s {median:>8.2}s {ideal:>8.2}s {:>14.2} {:>11.2}",
            median / sequential,
            median / ideal
        );
    }
}

/// One `create` from nothing (box already installed): the time from its start
/// to the start of the node wait, as its progress lines print it. No API
/// server listens on the master's address, so the wait then fails at once.
fn vm_work(agents: u8, delay: f64) -> Duration {
    let config = format!(
        "[cluster]\nagents = {agents}\nmaster_ip = \"127.0.0.2\"\nready_timeout_secs = 1\n"
    );
    let mut sandbox = Sandbox::new(&config);
    sandbox.env("FAKE_VAGRANT_DELAY", &delay.to_string());
    sandbox.add_box("bento/ubuntu-24.04 (virtualbox, 202502.21.0)");
    let run = sandbox.run(&["create"]);
    let stderr = run.stderr();
    let line = stderr
        .lines()
        .find(|line| line.ends_with("] nodes Ready: started"))
        .unwrap_or_else(|| panic!("create did not reach the node wait:\n{stderr}"));
    let seconds = line
        .trim_start_matches('[')
        .split('s')
        .next()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no time in {line:?}"));
    Duration::from_secs_f64(seconds)
}
