//! One run at a time per project: a command that changes the cluster or
//! `.orchestrator/` waits for another such run, saying so; a read-only one
//! does not wait.

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::vagrant::{Run, Sandbox};

/// Two running VMs whose halts take a second each.
fn slow_running_cluster() -> Sandbox {
    let mut sandbox = Sandbox::new("[cluster]\nmaster_ip = \"127.0.0.2\"\n");
    sandbox.set_machine("master", "running");
    sandbox.set_machine("agent", "running");
    sandbox.env("FAKE_VAGRANT_DELAY", "1");
    let events = sandbox.root.join("events");
    sandbox.env("FAKE_VAGRANT_EVENTS", events.to_str().unwrap());
    sandbox
}

fn events(sandbox: &Sandbox) -> Vec<String> {
    std::fs::read_to_string(sandbox.root.join("events"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// Starts `stop` and returns once its first halt began.
fn a_stop_under_way(sandbox: &Sandbox) -> Child {
    let first = sandbox
        .command(&["stop"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while events(sandbox).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "no halt began");
        std::thread::sleep(Duration::from_millis(20));
    }
    first
}

#[test]
fn a_second_stop_waits_for_the_first_and_names_its_pid() {
    let sandbox = slow_running_cluster();
    let first = a_stop_under_way(&sandbox);
    let second = Run(sandbox.command(&["stop"]).output().unwrap());
    let first_pid = first.id();
    let first = Run(first.wait_with_output().unwrap());
    first.expect_code(0);
    second.expect_code(0).stderr_has(&format!(
        "waiting for another orchestrator run (pid {first_pid})"
    ));
    // No step of one run began while a step of the other was under way.
    let events = events(&sandbox);
    for pair in events.chunks(2) {
        assert!(
            pair.len() == 2 && pair[0].starts_with("start ") && pair[1].starts_with("end "),
            "interleaved steps: {events:?}"
        );
    }
}

#[test]
fn a_read_only_command_does_not_wait() {
    let sandbox = slow_running_cluster();
    let mut first = a_stop_under_way(&sandbox);
    let status = Run(sandbox
        .command(&["status", "--kubeconfig", "/nonexistent"])
        .output()
        .unwrap());
    assert!(
        first.try_wait().unwrap().is_none(),
        "status waited for stop to end"
    );
    assert!(
        !status
            .stderr()
            .contains("waiting for another orchestrator run"),
        "{}",
        status.stderr()
    );
    first.wait().unwrap();
}
