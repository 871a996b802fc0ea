//! The one way this tool runs another program (vagrant, docker). Every run is a
//! named step whose output goes to a log under `.orchestrator/logs/`, and whose
//! failure says which step, whether the program could not start or exited
//! non-zero, the last lines it printed and where the whole log is.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A program and its arguments, before it runs.
#[derive(Debug, Clone)]
pub struct Command {
    program: String,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    dir: Option<PathBuf>,
}

impl Command {
    pub fn new(program: impl Into<String>) -> Self {
        Command {
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            dir: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The command line as a user would type it (environment not shown: it may hold secrets).
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn expression(&self) -> duct::Expression {
        let mut expr = duct::cmd(&self.program, &self.args);
        for (key, value) in &self.envs {
            expr = expr.env(key, value);
        }
        if let Some(dir) = &self.dir {
            expr = expr.dir(dir);
        }
        expr.stdin_null().unchecked()
    }
}

/// What happens to the program's standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdout {
    /// Into the log, with standard error.
    Log,
    /// Returned to the caller (it may be data, such as a kubeconfig, that must
    /// not land in a log); standard error still goes to the log.
    Capture,
}

/// Runs commands as named steps, logging into one directory.
#[derive(Debug, Clone)]
pub struct Runner {
    logs_dir: PathBuf,
}

/// How many lines of the log a failure shows.
const TAIL_LINES: usize = 15;

impl Runner {
    pub fn new(logs_dir: impl Into<PathBuf>) -> Self {
        Runner {
            logs_dir: logs_dir.into(),
        }
    }

    pub fn log_path(&self, step: &str) -> PathBuf {
        let slug: String = step
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        self.logs_dir.join(format!("{slug}.log"))
    }

    /// Runs `command` as `step` on a blocking thread; returns its standard output
    /// when `stdout` is `Capture`, else an empty string.
    pub async fn run(
        &self,
        step: &str,
        command: Command,
        stdout: Stdout,
    ) -> Result<String, ProcessError> {
        let runner = self.clone();
        let step = step.to_string();
        tokio::task::spawn_blocking(move || runner.run_blocking(&step, &command, stdout))
            .await
            .expect("a process-runner thread panicked")
    }

    pub fn run_blocking(
        &self,
        step: &str,
        command: &Command,
        stdout: Stdout,
    ) -> Result<String, ProcessError> {
        let log = self.log_path(step);
        let failure = |kind| ProcessError {
            step: step.to_string(),
            command: command.display(),
            kind,
            tail: tail_of(&log),
            log: log.clone(),
        };
        std::fs::create_dir_all(&self.logs_dir)
            .map_err(|err| failure(FailureKind::CouldNotStart(err)))?;
        let expr = command.expression().stderr_path(&log);
        let expr = match stdout {
            Stdout::Log => expr.stderr_to_stdout().stdout_path(&log),
            Stdout::Capture => expr.stdout_capture(),
        };
        let output = expr
            .run()
            .map_err(|err| failure(FailureKind::CouldNotStart(err)))?;
        if !output.status.success() {
            return Err(failure(FailureKind::Exited(output.status.code())));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

fn tail_of(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..]
        .iter()
        .map(|line| line.to_string())
        .collect()
}

#[derive(Debug)]
pub enum FailureKind {
    CouldNotStart(io::Error),
    /// `None` when a signal ended it.
    Exited(Option<i32>),
}

#[derive(Debug)]
pub struct ProcessError {
    pub step: String,
    pub command: String,
    pub kind: FailureKind,
    pub tail: Vec<String>,
    pub log: PathBuf,
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FailureKind::CouldNotStart(err) => write!(
                f,
                "{}: could not start `{}`: {err}",
                self.step, self.command
            )?,
            FailureKind::Exited(Some(code)) => write!(
                f,
                "{}: `{}` exited with status {code}",
                self.step, self.command
            )?,
            FailureKind::Exited(None) => write!(
                f,
                "{}: `{}` was killed by a signal",
                self.step, self.command
            )?,
        }
        if !self.tail.is_empty() {
            write!(f, "\n  last lines:")?;
            for line in &self.tail {
                write!(f, "\n  | {line}")?;
            }
        }
        write!(f, "\n  full log: {}", self.log.display())
    }
}

impl std::error::Error for ProcessError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_stdout_is_returned_and_stderr_logged() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::new(dir.path());
        let cmd = Command::new("sh").args(["-c", "echo out; echo err >&2"]);
        let out = runner
            .run_blocking("say hello", &cmd, Stdout::Capture)
            .unwrap();
        assert_eq!(out, "out\n");
        let log = std::fs::read_to_string(dir.path().join("say-hello.log")).unwrap();
        assert_eq!(log, "err\n");
    }

    #[test]
    fn failure_names_step_status_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::new(dir.path());
        let cmd =
            Command::new("sh").args(["-c", "for i in $(seq 30); do echo line $i; done; exit 7"]);
        let err = runner
            .run_blocking("boot agent", &cmd, Stdout::Log)
            .unwrap_err();
        assert!(matches!(err.kind, FailureKind::Exited(Some(7))));
        assert_eq!(err.tail.len(), TAIL_LINES);
        assert_eq!(err.tail.last().unwrap(), "line 30");
        let text = err.to_string();
        assert!(text.starts_with("boot agent: `sh -c"), "{text}");
        assert!(text.contains("exited with status 7"), "{text}");
        assert!(text.contains("boot-agent.log"), "{text}");
    }

    #[test]
    fn missing_program_could_not_start() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::new(dir.path());
        let cmd = Command::new("surely-not-a-program-here");
        let err = runner.run_blocking("probe", &cmd, Stdout::Log).unwrap_err();
        assert!(matches!(err.kind, FailureKind::CouldNotStart(_)), "{err}");
    }
}
