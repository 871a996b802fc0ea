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

/// A short grace period, so that a test that waits it out is quick.
const TEST_GRACE: Duration = Duration::from_secs(3);

/// Runs `command` until both its processes started, then drops the run.
async fn drop_a_running(dir: &Path, command: Command) {
    let runner = Runner::new(dir).grace(TEST_GRACE);
    let run = runner.run("build", command, Stdout::Log);
    tokio::select! {
        _ = run => panic!("the program ended by itself"),
        () = both_started(dir) => {}
    }
}

/// A leader that SIGINT ends at once, and a child in its group that takes
/// a moment to clean up at SIGINT, then writes `cleaned`. (`env
/// --default-signal` because sh starts a background job ignoring SIGINT.)
fn slow_to_clean_up(dir: &Path) -> Command {
    let (pids, cleaned) = (dir.join("pids"), dir.join("cleaned"));
    let child = format!(
        "trap \"sleep 0.5; echo done > {}; exit 0\" INT; echo $$ >> {}; while :; do sleep 0.1; done",
        cleaned.display(),
        pids.display()
    );
    Command::new("sh").args([
        "-c".to_string(),
        format!(
            "env --default-signal=INT sh -c '{child}' & echo $$ >> {}; wait",
            pids.display()
        ),
    ])
}

#[tokio::test]
async fn a_step_over_its_time_limit_is_stopped_with_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(dir.path()).grace(TEST_GRACE);
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
    drop_a_running(dir.path(), sleeper(dir.path(), false)).await;
    process::stopped().await;
    assert_eq!(survivors(&dir.path().join("pids")), Vec::<String>::new());
}

#[tokio::test]
async fn a_child_that_ignores_sigint_is_killed_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    drop_a_running(dir.path(), sleeper(dir.path(), true)).await;
    let dropped = Instant::now();
    process::stopped().await;
    let waited = dropped.elapsed();
    assert!(waited >= TEST_GRACE, "SIGKILL came before the grace period");
    assert!(waited < GRACE, "the runner's grace period, not the default");
    assert_eq!(survivors(&dir.path().join("pids")), Vec::<String>::new());
}

#[tokio::test]
async fn the_grace_period_lasts_until_the_whole_group_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    drop_a_running(dir.path(), slow_to_clean_up(dir.path())).await;
    let dropped = Instant::now();
    process::stopped().await;
    assert!(
        dir.path().join("cleaned").exists(),
        "the child was killed before it cleaned up, when its leader exited"
    );
    assert!(
        dropped.elapsed() < TEST_GRACE,
        "the stop waited for the grace period's end, not for the group"
    );
    assert_eq!(survivors(&dir.path().join("pids")), Vec::<String>::new());
}
