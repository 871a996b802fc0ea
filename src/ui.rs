//! Rendering the core's events on stderr, so that stdout carries only a
//! command's result (JSON, the plan, a completion script) and pipes cleanly:
//! a live line per task with indicatif when stderr is a terminal, plain
//! timestamped lines otherwise (CI logs), nothing but warnings with `-q`.
//! Colour is decided per stream by anstream: only on a terminal, never with
//! `NO_COLOR`, always with `CLICOLOR_FORCE`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anstream::{AutoStream, ColorChoice};
use anstyle::{AnsiColor, Style};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use orchestrator::reporter::{Event, Reporter};

pub const FAILURE: Style = AnsiColor::Red.on_default().bold();
pub const SUCCESS: Style = AnsiColor::Green.on_default();
pub const WARNING: Style = AnsiColor::Yellow.on_default().bold();

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

pub fn reporter(verbosity: Verbosity) -> Box<dyn Reporter> {
    match verbosity {
        Verbosity::Quiet => Box::new(Quiet),
        Verbosity::Normal if std::io::stderr().is_terminal() => Box::new(Live::new()),
        _ => Box::new(Plain::new()),
    }
}

/// `text` in `style`. Print it with anstream's `print!`/`eprintln!`, which
/// drop the style where that stream gets no colour.
pub fn styled(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// An error and its causes, one per line, as `main` prints it.
pub fn error_text(err: &anyhow::Error) -> String {
    let mut text = format!("{} {err}", styled(FAILURE, "error:"));
    for cause in err.chain().skip(1) {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    text
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

struct Quiet;

impl Reporter for Quiet {
    fn report(&self, event: Event) {
        if let Event::Warning(message) = event {
            anstream::eprintln!("{} {message}", styled(WARNING, "warning:"));
        }
    }
}

/// One line per event, with the time since the command started.
struct Plain {
    start: Instant,
    labels: Mutex<HashMap<String, (String, Instant)>>,
}

impl Plain {
    fn new() -> Self {
        Plain {
            start: Instant::now(),
            labels: Mutex::default(),
        }
    }
}

impl Reporter for Plain {
    fn report(&self, event: Event) {
        let at = format!("[{:>6}]", seconds(self.start.elapsed()));
        let mut labels = self.labels.lock().unwrap();
        let label = |id: &str| labels.get(id).map_or(id.to_string(), |(l, _)| l.clone());
        match event {
            Event::Started { id, label: text } => {
                anstream::eprintln!("{at} {text}: started");
                labels.insert(id, (text, Instant::now()));
            }
            Event::Progress { id, message } => {
                anstream::eprintln!("{at} {}: {message}", label(&id))
            }
            Event::Finished { id, ok, message } => {
                let took = labels.get(&id).map(|(_, t)| seconds(t.elapsed()));
                let mark = if ok {
                    styled(SUCCESS, "ok")
                } else {
                    styled(FAILURE, "FAILED")
                };
                let took = took.map_or(String::new(), |t| format!(" ({t})"));
                anstream::eprintln!("{at} {}: {mark}: {message}{took}", label(&id));
            }
            Event::Note(message) => anstream::eprintln!("{at} {message}"),
            Event::Warning(message) => {
                anstream::eprintln!("{at} {} {message}", styled(WARNING, "warning:"))
            }
        }
    }
}

/// A spinner line per task on stderr that ends as a ✓ or ✗ line with its time.
struct Live {
    bars: MultiProgress,
    tasks: Mutex<HashMap<String, (ProgressBar, String)>>,
    /// indicatif writes to the terminal itself, past anstream.
    colour: bool,
}

impl Live {
    fn new() -> Self {
        Live {
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            tasks: Mutex::default(),
            colour: AutoStream::choice(&std::io::stderr()) != ColorChoice::Never,
        }
    }

    fn println(&self, line: &str) {
        let line = if self.colour {
            line.to_string()
        } else {
            anstream::adapter::strip_str(line).to_string()
        };
        let _ = self.bars.println(line);
    }
}

impl Reporter for Live {
    fn report(&self, event: Event) {
        let mut tasks = self.tasks.lock().unwrap();
        match event {
            Event::Started { id, label } => {
                let style =
                    ProgressStyle::with_template("{spinner} {prefix}: {wide_msg} {elapsed:>4}")
                        .expect("valid template");
                let bar = self.bars.add(ProgressBar::new_spinner().with_style(style));
                bar.set_prefix(label.clone());
                bar.set_message("started");
                bar.enable_steady_tick(Duration::from_millis(120));
                tasks.insert(id, (bar, label));
            }
            Event::Progress { id, message } => {
                if let Some((bar, _)) = tasks.get(&id) {
                    bar.set_message(message);
                }
            }
            Event::Finished { id, ok, message } => {
                // A finished task leaves the live area for a permanent line above it.
                if let Some((bar, label)) = tasks.remove(&id) {
                    let mark = if ok {
                        styled(SUCCESS, "✓")
                    } else {
                        styled(FAILURE, "✗")
                    };
                    let took = seconds(bar.elapsed());
                    bar.finish_and_clear();
                    self.println(&format!("{mark} {label}: {message} ({took})"));
                }
            }
            Event::Note(message) => self.println(&message),
            Event::Warning(message) => {
                self.println(&format!("{} {message}", styled(WARNING, "warning:")))
            }
        }
    }
}
