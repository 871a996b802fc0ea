//! `dashboard`: the cluster and the stack on a local web page, live. A
//! [`Monitor`] keeps a [`Snapshot`] of what the page shows (`model`), built
//! again from the watches' reflector stores (`watches`) whenever one reports
//! a change (and every few seconds, when a probe of the API server reports),
//! and each app's log tail (`log_book`). [`server`] serves both, read-only,
//! to the page.
//!
//! A lost connection keeps the last data on the page, marked stale with why;
//! a failed watch starts over by itself, and once the API server answers and
//! every watch's list is whole again the mark is cleared.

mod log_book;
mod model;
pub mod server;
mod watches;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use log_book::{LogBook, LogEvent};
pub use model::{NodeRow, PodRow, Snapshot};

use crate::stack::{COMPONENTS, Stack};
use crate::state::State;
use crate::verify::Audit;
use model::{Contents, Health, Report};
use watches::Stores;

/// Where the page's data comes from.
#[derive(Clone)]
pub struct Source {
    pub client: kube::Client,
    pub cluster: String,
    pub namespace: String,
    /// The last `verify` run's JSON ([`last_verify_file`]).
    pub verify_file: PathBuf,
}

/// How often the API server is asked whether it answers (and the snapshot
/// built again without a change), how soon a failed watch starts over, and
/// how long a log tail waits before it tries again.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub refresh: Duration,
    pub log_retry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            refresh: Duration::from_secs(5),
            log_retry: Duration::from_secs(2),
        }
    }
}

/// Where `verify` keeps its last run for the dashboard.
pub fn last_verify_file(state: &State) -> PathBuf {
    state.dir().join("last-verify.json")
}

/// Keeps the audit as the dashboard's checklist.
pub fn record_verify(state: &State, audit: &Audit) -> anyhow::Result<()> {
    crate::state::write_private(&last_verify_file(state), &serde_json::to_vec(audit)?)
}

/// The live data behind the page; its tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct Monitor {
    pub snapshot: watch::Receiver<Snapshot>,
    pub logs: LogBook,
    _tasks: Arc<Tasks>,
}

struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Monitor {
    /// Starts the watches and waits for each one's first list (or its
    /// failure), then keeps the snapshot and the log tails up to date.
    pub async fn start(source: Source, timing: Timing) -> Monitor {
        let (reporter, mut reports) = mpsc::unbounded_channel();
        let watches::Watches {
            stores,
            feeds,
            tasks,
        } = watches::start(&source.client, &source.namespace, timing.refresh, &reporter);
        // Aborted if this future is dropped while it waits.
        let mut tasks = Tasks(tasks);
        let mut page = Page {
            source,
            stores,
            health: Health::default(),
        };
        let mut unheard = feeds;
        while !unheard.is_empty() {
            let Some(report) = reports.recv().await else {
                break;
            };
            unheard.retain(|feed| *feed != report.feed);
            page.health.note(report);
        }
        let first = page.snapshot(None);
        let source = page.source.clone();
        let (sender, snapshot) = watch::channel(first);
        let logs = LogBook::new(200);
        tasks
            .0
            .push(tokio::spawn(keep_fresh(page, reports, sender)));
        for component in &COMPONENTS {
            tasks.0.push(tokio::spawn(log_book::tail(
                source.clone(),
                component,
                logs.clone(),
                snapshot.clone(),
                timing,
            )));
        }
        Monitor {
            snapshot,
            logs,
            _tasks: Arc::new(tasks),
        }
    }
}

#[cfg(test)]
impl Monitor {
    /// A monitor of no cluster: the test changes the snapshot and the tails itself.
    pub(crate) fn fixed(snapshot: Snapshot) -> (watch::Sender<Snapshot>, Monitor, LogBook) {
        let (sender, receiver) = watch::channel(snapshot);
        let logs = LogBook::new(200);
        let monitor = Monitor {
            snapshot: receiver,
            logs: logs.clone(),
            _tasks: Arc::new(Tasks(Vec::new())),
        };
        (sender, monitor, logs)
    }
}

/// What the snapshot is built from: the stores, and what fails.
struct Page {
    source: Source,
    stores: Stores,
    health: Health,
}

impl Page {
    /// The snapshot now; `updated_at` is the last one's while something fails.
    fn snapshot(&self, updated_at: Option<String>) -> Snapshot {
        let stores = &self.stores;
        let (nodes, pods, secrets) = (
            stores.nodes.state(),
            stores.pods.state(),
            stores.secrets.state(),
        );
        let (deployments, stateful_sets, autoscalers, services) = (
            stores.deployments.state(),
            stores.stateful_sets.state(),
            stores.autoscalers.state(),
            stores.services.state(),
        );
        let stack = Stack::of(
            &self.source.namespace,
            deployments.iter().map(AsRef::as_ref),
            stateful_sets.iter().map(AsRef::as_ref),
            autoscalers.iter().map(AsRef::as_ref),
            services.iter().map(AsRef::as_ref),
        );
        let contents = Contents {
            nodes: &nodes,
            pods: &pods,
            secrets: &secrets,
            stack: &stack,
        };
        Snapshot {
            cluster: self.source.cluster.clone(),
            namespace: self.source.namespace.clone(),
            verify: std::fs::read(&self.source.verify_file)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok()),
            ..model::snapshot(&contents, &self.health, updated_at, Timestamp::now())
        }
    }
}

/// An error and its causes, each said once: kube's errors repeat their
/// cause in their own text, and anyhow's `{:#}` would say it again.
fn said_once(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        let said = err.to_string();
        if !text.ends_with(&said) {
            text = format!("{text}: {said}");
        }
        cause = err.source();
    }
    text
}

/// Builds the snapshot again on every report (a burst counts once): the
/// probe's every few seconds keeps the heartbeats' ages current.
async fn keep_fresh(
    mut page: Page,
    mut reports: mpsc::UnboundedReceiver<Report>,
    sender: watch::Sender<Snapshot>,
) {
    while let Some(report) = reports.recv().await {
        page.health.note(report);
        tokio::time::sleep(Duration::from_millis(100)).await;
        while let Ok(report) = reports.try_recv() {
            page.health.note(report);
        }
        let updated_at = sender.borrow().updated_at.clone();
        sender.send_replace(page.snapshot(updated_at));
    }
}

#[cfg(test)]
mod tests;
