//! Each app's log tail for the page: the [`LogBook`] keeps the last lines and
//! hands out their changes, and [`tail`] follows an app's pods into it
//! through [`crate::logs`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use super::{Snapshot, Source, Timing};
use crate::logs;
use crate::stack::Component;

/// A change to one app's log tail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEvent {
    pub app: String,
    /// A new line, or none when the tail starts over (its pods changed).
    pub line: Option<String>,
}

/// The last lines of each app's log, and their changes as they happen.
#[derive(Clone)]
pub struct LogBook {
    tails: Arc<Mutex<BTreeMap<String, VecDeque<String>>>>,
    events: broadcast::Sender<LogEvent>,
    keep: usize,
}

impl LogBook {
    pub fn new(keep: usize) -> Self {
        LogBook {
            tails: Arc::default(),
            events: broadcast::channel(1024).0,
            keep,
        }
    }

    pub fn push(&self, app: &str, line: String) {
        let mut tails = self.tails.lock().unwrap();
        let tail = tails.entry(app.to_string()).or_default();
        if tail.len() == self.keep {
            tail.pop_front();
        }
        tail.push_back(line.clone());
        let _ = self.events.send(LogEvent {
            app: app.into(),
            line: Some(line),
        });
    }

    pub fn reset(&self, app: &str) {
        let mut tails = self.tails.lock().unwrap();
        tails.insert(app.to_string(), VecDeque::new());
        let _ = self.events.send(LogEvent {
            app: app.into(),
            line: None,
        });
    }

    /// Every tail now, and every change after it (nothing lost or seen twice between).
    pub fn subscribe(&self) -> (BTreeMap<String, Vec<String>>, broadcast::Receiver<LogEvent>) {
        let tails = self.tails.lock().unwrap();
        let now = tails
            .iter()
            .map(|(app, tail)| (app.clone(), tail.iter().cloned().collect()))
            .collect();
        (now, self.events.subscribe())
    }
}

fn pods_of(snapshot: &Snapshot, app: &str) -> Vec<String> {
    snapshot
        .pods
        .iter()
        .filter(|p| p.app == app)
        .map(|p| p.name.clone())
        .collect()
}

/// Follows `app`'s log into the book; starts over when its pods change (a new
/// replica's lines are followed too) or the stream ends.
pub(super) async fn tail(
    source: Source,
    component: &'static Component,
    book: LogBook,
    mut snapshots: watch::Receiver<Snapshot>,
    timing: Timing,
) {
    let app = component.name;
    let follow = logs::Options {
        follow: true,
        since_seconds: None,
    };
    loop {
        let pods = pods_of(&snapshots.borrow_and_update(), app);
        if !pods.is_empty()
            && let Ok(mut lines) =
                logs::lines(&source.client, &source.namespace, component, &follow).await
        {
            book.reset(app);
            loop {
                tokio::select! {
                    line = lines.next() => match line {
                        Some(Ok(line)) => book.push(app, line),
                        _ => break,
                    },
                    changed = snapshots.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if pods_of(&snapshots.borrow_and_update(), app) != pods {
                            break;
                        }
                    }
                }
            }
        }
        tokio::time::sleep(timing.log_retry).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_book_keeps_the_last_lines_and_hands_out_changes_after_them() {
        let book = LogBook::new(2);
        book.push("api-gateway", "one".into());
        book.push("api-gateway", "two".into());
        book.push("api-gateway", "three".into());
        let (now, mut changes) = book.subscribe();
        assert_eq!(now["api-gateway"], ["two", "three"]);
        book.reset("api-gateway");
        book.push("api-gateway", "four".into());
        assert_eq!(changes.try_recv().unwrap().line, None);
        assert_eq!(changes.try_recv().unwrap().line.as_deref(), Some("four"));
        assert_eq!(book.subscribe().0["api-gateway"], ["four"]);
    }
}
