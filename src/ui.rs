//! Rendering the core's events: a live line per task with indicatif on a
//! terminal, plain timestamped lines otherwise (CI logs), nothing but warnings
//! with `-q`. Colour only on a terminal and never with `NO_COLOR`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use orchestrator::reporter::{Event, Reporter};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

pub fn reporter(verbosity: Verbosity) -> Box<dyn Reporter> {
    match verbosity {
        Verbosity::Quiet => Box::new(Quiet),
        Verbosity::Normal if std::io::stdout().is_terminal() => Box::new(Live::new()),
        _ => Box::new(Plain::new()),
    }
}

fn colour_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// `text` in an ANSI colour (31 red, 32 green, 33 yellow) when colour is on.
pub fn paint(code: u8, text: &str) -> String {
    if colour_enabled() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// An error and its causes, one per line, as `main` prints it.
pub fn error_text(err: &anyhow::Error) -> String {
    let mut text = format!("{} {err}", paint(31, "error:"));
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
            eprintln!("{} {message}", paint(33, "warning:"));
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
                println!("{at} {text}: started");
                labels.insert(id, (text, Instant::now()));
            }
            Event::Progress { id, message } => println!("{at} {}: {message}", label(&id)),
            Event::Finished { id, ok, message } => {
                let took = labels.get(&id).map(|(_, t)| seconds(t.elapsed()));
                let mark = if ok { "ok" } else { "FAILED" };
                let took = took.map_or(String::new(), |t| format!(" ({t})"));
                println!("{at} {}: {mark}: {message}{took}", label(&id));
            }
            Event::Note(message) => println!("{at} {message}"),
            Event::Warning(message) => eprintln!("{at} warning: {message}"),
        }
    }
}

/// A spinner line per task that ends as a ✓ or ✗ line with its time.
struct Live {
    bars: MultiProgress,
    tasks: Mutex<HashMap<String, (ProgressBar, String)>>,
}

impl Live {
    fn new() -> Self {
        Live {
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            tasks: Mutex::default(),
        }
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
                        paint(32, "✓")
                    } else {
                        paint(31, "✗")
                    };
                    let took = seconds(bar.elapsed());
                    bar.finish_and_clear();
                    let _ = self
                        .bars
                        .println(format!("{mark} {label}: {message} ({took})"));
                }
            }
            Event::Note(message) => {
                let _ = self.bars.println(message);
            }
            Event::Warning(message) => {
                let _ = self
                    .bars
                    .println(format!("{} {message}", paint(33, "warning:")));
            }
        }
    }
}
