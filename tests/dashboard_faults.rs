//! Fault drill for `dashboard` against kube-sim (`#[ignore]`d;
//! `KUBE_SIM_KUBECONFIG`): while the API server is down the snapshot says
//! the connection is lost and keeps the last data; once it is back, the
//! snapshot is live again without any help.

mod support;

use std::time::{Duration, Instant};

use orchestrator::dashboard::{Monitor, Snapshot, Source, Timing};
use tokio::sync::watch;

/// Waits until the snapshot satisfies `check`, or fails saying `what`.
async fn until(
    snapshots: &mut watch::Receiver<Snapshot>,
    within: Duration,
    what: &str,
    check: impl Fn(&Snapshot) -> bool,
) {
    let deadline = Instant::now() + within;
    while !check(&snapshots.borrow_and_update()) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            tokio::time::timeout(left, snapshots.changed())
                .await
                .is_ok(),
            "{what} within {within:?}: {:?}",
            snapshots.borrow()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "fault drill: needs kube-sim (KUBE_SIM_KUBECONFIG)"]
async fn a_restarted_api_server_shows_as_lost_then_live_again() {
    let kube_sim = support::kube_sim::exclusive();
    let client = support::kube_sim::client(&kube_sim.kubeconfig).await;
    let source = Source {
        client,
        cluster: "kube-sim".into(),
        namespace: "default".into(),
        verify_file: "/nonexistent/last-verify.json".into(),
    };
    let timing = Timing {
        refresh: Duration::from_millis(300),
        log_retry: Duration::from_millis(500),
    };
    let monitor = Monitor::start(source, timing).await;
    let mut snapshots = monitor.snapshot.clone();
    until(&mut snapshots, Duration::from_secs(5), "live", |s| {
        s.connected && s.nodes.len() == 2
    })
    .await;

    let down = tokio::task::spawn_blocking(move || {
        kube_sim.restart_apiserver(4);
        kube_sim
    });
    until(
        &mut snapshots,
        Duration::from_secs(20),
        "the loss shown",
        |s| !s.connected && s.error.is_some(),
    )
    .await;
    let lost = snapshots.borrow().clone();
    assert_eq!(lost.nodes.len(), 2, "the last data is kept while lost");
    let _kube_sim = down.await.unwrap();
    let started = Instant::now();
    until(&mut snapshots, Duration::from_secs(30), "live again", |s| {
        s.connected && s.error.is_none() && s.nodes.len() == 2
    })
    .await;
    println!(
        "live again {:.1}s after the API server was back",
        started.elapsed().as_secs_f64()
    );
}
