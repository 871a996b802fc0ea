//! How the core tells what it is doing, without knowing how it is shown. The
//! binary renders events with indicatif on a terminal or as plain lines; tests
//! record them.

use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A unit of work (a phase, an object) started; `id` names it in later events.
    Started { id: String, label: String },
    /// Its state changed, e.g. "waiting: 0/1 ready".
    Progress { id: String, message: String },
    /// It ended, well or not, with a last word.
    Finished {
        id: String,
        ok: bool,
        message: String,
    },
    /// A line worth a user's attention.
    Note(String),
    /// Something that did not stop the work but may matter.
    Warning(String),
}

pub trait Reporter: Send + Sync {
    fn report(&self, event: Event);

    fn started(&self, id: &str, label: &str) {
        self.report(Event::Started {
            id: id.into(),
            label: label.into(),
        });
    }

    fn progress(&self, id: &str, message: &str) {
        self.report(Event::Progress {
            id: id.into(),
            message: message.into(),
        });
    }

    fn finished(&self, id: &str, ok: bool, message: &str) {
        self.report(Event::Finished {
            id: id.into(),
            ok,
            message: message.into(),
        });
    }

    fn note(&self, message: &str) {
        self.report(Event::Note(message.into()));
    }

    fn warning(&self, message: &str) {
        self.report(Event::Warning(message.into()));
    }
}

/// A task shown started on a reporter, whose end is reported once: by
/// [`Task::finish`], or, when its work is dropped unfinished (a sibling's
/// failure or a signal stopped it), as [`STOPPED`] rather than left shown as
/// running.
pub struct Task<'a> {
    reporter: &'a dyn Reporter,
    id: &'a str,
    finished: bool,
}

/// What a task dropped unfinished ends with.
pub const STOPPED: &str = "stopped before it finished";

impl<'a> Task<'a> {
    pub fn start(reporter: &'a dyn Reporter, id: &'a str, label: &str) -> Self {
        reporter.started(id, label);
        Task {
            reporter,
            id,
            finished: false,
        }
    }

    pub fn finish(mut self, ok: bool, message: &str) {
        self.reporter.finished(self.id, ok, message);
        self.finished = true;
    }
}

impl Drop for Task<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.reporter.finished(self.id, false, STOPPED);
        }
    }
}

/// Keeps every event, for tests.
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
}

impl Reporter for Recorder {
    fn report(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }
}

/// For work whose progress nobody watches.
pub struct Silent;

impl Reporter for Silent {
    fn report(&self, _event: Event) {}
}
