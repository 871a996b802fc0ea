//! Every child runs in a process group of its own, and none outlives its
//! step: over its time limit, or when its run is dropped (a sibling failed,
//! the command was interrupted), the group gets SIGINT, then SIGKILL after the
//! grace period; `process::stopped` waits for those stops.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use orchestrator::process::{self, Command, FailureKind, GRACE, Runner, Stdout};
use support::survivors;

/// A program that starts a grandchild in its group, records both pids and
/// waits; `trap` makes the leader ignore SIGINT when `stubborn`.
fn sleeper(dir: &Path, stubborn: bool) -> Command {
    let pids = dir.join("pids");
    let trap = if stubborn { "trap '' INT; " } else { "" };
    Command::new("sh").args([
        "-c".to_string(),
        format!(
            "{trap}sleep 30 & echo $! >> {0}; echo $$ >> {0}; echo waiting; wait",
            pids.display()
        ),
    ])
}

async fn both_started(dir: &Path) {
    while std::fs::read_to_string(dir.join("pids")).map_or(0, |p| p.lines().count()) < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a sleeper until both its processes started, then drops the run.
async fn drop_a_running(dir: &Path, stubborn: bool) {
    let runner = Runner::new(dir);
    let run = runner.run("build", sleeper(dir, stubborn), Stdout::Log);
    tokio::select! {
        _ = run => panic!("the sleeper ended by itself"),
        () = both_started(dir) => {}
    }
}

#[tokio::test]
async fn a_step_over_its_time_limit_is_stopped_with_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(dir.path());
    let cmd = sleeper(dir.path(), false).time_limit(Some(Duration::from_secs(1)));
    let err = runner
        .run("boot master", cmd, Stdout::Log)
        .await
        .unwrap_err();
    assert!(matches!(err.kind, FailureKind::TimedOut(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("did not finish within 1s and was stopped"),
        "{text}"
    );
    assert!(text.contains("| waiting"), "{text}");
    assert_eq!(survivors(&dir.path().join("pids")), Vec::<String>::new());
}

#[tokio::test]
async fn a_dropped_run_stops_its_group_and_stopped_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    drop_a_running(dir.path(), false).await;
    process::stopped().await;
    assert_eq!(survivors(&dir.path().join("pids")), Vec::<String>::new());
}

#[tokio::test]
async fn a_child_that_ignores_sigint_is_killed_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    drop_a_running(dir.path(), true).await;
    let dropped = Instant::now();
    process::stopped().await;
    assert!(
        dropped.elapsed() >= GRACE,
        "SIGKILL came before the grace period"
    );
    assert_eq!(survivors(&dir.path().join("pids")), Vec::<String>::new());
}
