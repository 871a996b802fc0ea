//! The one way this tool runs another program (vagrant, docker, git). Every
//! run is a named step whose output goes to one log under
//! `.orchestrator/logs/` (both streams through one handle, in order, after a
//! header; the previous run's log kept as `.1`), and whose failure says which
//! step, whether the program could not start, exited non-zero or overran its
//! time limit, the last lines it printed and where the whole log is.
//!
//! Each child leads its own process group, so that it can be stopped with
//! everything it started: SIGINT, a grace period, then SIGKILL. That happens
//! when its time limit expires, when the run is dropped (a sibling step
//! failed, Ctrl-C or SIGTERM ended the command), and [`stopped`] lets `main`
//! wait for those stops before it exits.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;

/// How long a child has, after SIGINT, to clean up before SIGKILL (vagrant
/// cleans up a half-created VM).
pub const GRACE: Duration = Duration::from_secs(10);

/// How many lines of the log a failure shows.
const TAIL_LINES: usize = 15;

/// How much of the log's end a failure's tail is read from: enough for
/// `TAIL_LINES` of any sane width, without reading a log of gigabytes.
const TAIL_BYTES: u64 = 64 * 1024;

/// The most standard output a captured run may print. What is captured is
/// data for this tool (a kubeconfig, `vagrant status`, an image's digest),
/// kilobytes; a program that prints more is broken (a loop, the wrong
/// command), and the step fails rather than the tool's memory growing.
const CAPTURE_LIMIT: usize = 16 * 1024 * 1024;

/// A program and its arguments, before it runs.
#[derive(Debug, Clone)]
pub struct Command {
    program: String,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    dir: Option<PathBuf>,
    /// A file for the program's standard input (else it reads nothing).
    stdin: Option<PathBuf>,
    /// How long it may run before it is stopped (else unbounded).
    limit: Option<Duration>,
}

impl Command {
    pub fn new(program: impl Into<String>) -> Self {
        Command {
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            dir: None,
            stdin: None,
            limit: None,
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

    pub fn stdin_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.stdin = Some(path.into());
        self
    }

    /// Stops the program (and its process group) when it runs longer than `limit`.
    pub fn time_limit(mut self, limit: Option<Duration>) -> Self {
        self.limit = limit;
        self
    }

    /// The command line as a user would type it (environment not shown: it may hold secrets).
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn spawn(&self, log: &File, stdout: Stdout) -> io::Result<tokio::process::Child> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .process_group(0)
            .stderr(log.try_clone()?)
            .stdout(match stdout {
                Stdout::Log => Stdio::from(log.try_clone()?),
                Stdout::Capture => Stdio::piped(),
            })
            .stdin(match &self.stdin {
                Some(path) => Stdio::from(File::open(path)?),
                None => Stdio::null(),
            });
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command.spawn()
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
    /// How long a stopped program's group has, after SIGINT, before SIGKILL.
    grace: Duration,
}

impl Runner {
    pub fn new(logs_dir: impl Into<PathBuf>) -> Self {
        Runner {
            logs_dir: logs_dir.into(),
            grace: GRACE,
        }
    }

    /// Another grace period than [`GRACE`] for the programs this runner stops.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
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

    /// Runs `command` as `step`; returns its standard output when `stdout` is
    /// `Capture`, else an empty string. Dropping the future stops the program.
    pub async fn run(
        &self,
        step: &str,
        command: Command,
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
        let file =
            open_log(&log, &command).map_err(|err| failure(FailureKind::CouldNotStart(err)))?;
        let child = command
            .spawn(&file, stdout)
            .map_err(|err| failure(FailureKind::CouldNotStart(err)))?;
        drop(file);
        let mut group = Group::new(child, self.grace);
        let finished = group.finish();
        let result = match command.limit {
            None => finished.await,
            Some(limit) => tokio::time::timeout(limit, finished)
                .await
                .unwrap_or(Err(FailureKind::TimedOut(limit))),
        };
        match result {
            Ok((status, out)) if status.success() => Ok(out),
            Ok((status, _)) => Err(failure(FailureKind::Exited(status.code()))),
            Err(kind) => {
                group.stop().await;
                Err(failure(kind))
            }
        }
    }
}

/// Opens a fresh log for a run of `command`, keeping the previous one as `.1`.
fn open_log(path: &Path, command: &Command) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut previous = path.as_os_str().to_owned();
    previous.push(".1");
    match std::fs::rename(path, &previous) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    let mut file = File::create(path)?;
    let dir = match &command.dir {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().unwrap_or_default(),
    };
    writeln!(
        file,
        "# {} `{}` in {}",
        jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now()),
        command.display(),
        dir.display()
    )?;
    Ok(file)
}

/// A running child, the leader of its own process group. Dropped while the
/// child runs, it stops the group in the background (see [`stopped`]).
struct Group {
    child: Option<tokio::process::Child>,
    /// The child's pid, which is its group's id (`process_group(0)`).
    id: libc::pid_t,
    grace: Duration,
}

/// A stop begun by a dropped run.
struct Stopping {
    group: libc::pid_t,
    stop: JoinHandle<()>,
}

/// Stops begun by dropped runs, for [`stopped`] to wait for.
static STOPPING: Mutex<Vec<Stopping>> = Mutex::new(Vec::new());

/// The stops still under way, the finished ones forgotten.
fn stopping_now() -> std::sync::MutexGuard<'static, Vec<Stopping>> {
    let mut stops = STOPPING.lock().unwrap_or_else(|e| e.into_inner());
    stops.retain(|stopping| !stopping.stop.is_finished());
    stops
}

/// How many programs (each with its process group) are being stopped.
pub fn stopping() -> usize {
    stopping_now().len()
}

/// SIGKILL to every group being stopped, without waiting for the rest of
/// its grace period: the user's second Ctrl-C.
pub fn kill_stopping() {
    for stopping in stopping_now().iter() {
        signal_group(stopping.group, libc::SIGKILL);
    }
}

/// Waits until every child whose run was dropped has been stopped (at most
/// the grace period): `main` calls it before exiting, so that no child
/// outlives the command and its locks (a VM's) are free for the next run.
pub async fn stopped() {
    while stopping() > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Group {
    fn new(child: tokio::process::Child, grace: Duration) -> Self {
        let id = child
            .id()
            .and_then(|pid| libc::pid_t::try_from(pid).ok())
            .unwrap_or(0);
        Group {
            child: Some(child),
            id,
            grace,
        }
    }

    /// Waits for the child's exit, reading its captured standard output (up
    /// to [`CAPTURE_LIMIT`]: past it the child is left running, to be stopped).
    async fn finish(&mut self) -> Result<(std::process::ExitStatus, String), FailureKind> {
        let child = self.child.as_mut().expect("a running child");
        let mut out = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            let mut capped = stdout.take(CAPTURE_LIMIT as u64 + 1);
            capped
                .read_to_end(&mut out)
                .await
                .map_err(FailureKind::CouldNotStart)?;
            if out.len() > CAPTURE_LIMIT {
                return Err(FailureKind::TooMuchOutput);
            }
        }
        let status = child.wait().await.map_err(FailureKind::CouldNotStart)?;
        self.child = None;
        Ok((status, String::from_utf8_lossy(&out).into_owned()))
    }

    /// Stops the whole group (see [`stop_group`]).
    async fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_group(child, self.id, self.grace).await;
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let Some(child) = self.child.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let stop = runtime.spawn(stop_group(child, self.id, self.grace));
                STOPPING
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Stopping {
                        group: self.id,
                        stop,
                    });
            }
            // No runtime left to wait in: at least nothing survives.
            Err(_) => signal_group(self.id, libc::SIGKILL),
        }
    }
}

/// SIGINT to the group, up to `grace` for the whole group to exit (what the
/// leader started may still be cleaning up after the leader is gone: a VM
/// being deleted), then SIGKILL to whatever of the group is left.
async fn stop_group(mut child: tokio::process::Child, group: libc::pid_t, grace: Duration) {
    signal_group(group, libc::SIGINT);
    let group_gone = async {
        // Reaped first: until then the leader, a zombie, keeps its group in being.
        let _ = child.wait().await;
        while group_exists(group) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(grace, group_gone).await.is_err() {
        signal_group(group, libc::SIGKILL);
        let _ = child.wait().await;
    }
}

fn signal_group(group: libc::pid_t, signal: libc::c_int) {
    if group > 0 {
        // SAFETY: kill(2) touches no memory of ours; a group that is gone gives ESRCH.
        unsafe { libc::kill(-group, signal) };
    }
}

fn group_exists(group: libc::pid_t) -> bool {
    // SAFETY: signal 0 is only the existence check of kill(2).
    group > 0
        && (unsafe { libc::kill(-group, 0) } == 0
            || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH))
}

/// The last non-blank lines of the log, read from its last [`TAIL_BYTES`]
/// and lossily: one byte that is not UTF-8 (a progress bar cut in a
/// character) must not hide the lines around it.
fn tail_of(log: &Path) -> Vec<String> {
    let text = read_end(log, TAIL_BYTES).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..]
        .iter()
        .map(|line| line.to_string())
        .collect()
}

/// The last `bytes` of a file as text, without the line the cut fell into.
fn read_end(path: &Path, bytes: u64) -> io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path)?;
    let start = file.metadata()?.len().saturating_sub(bytes);
    file.seek(SeekFrom::Start(start))?;
    let mut end = Vec::new();
    file.read_to_end(&mut end)?;
    let text = String::from_utf8_lossy(&end);
    Ok(match text.split_once('\n') {
        Some((_cut, rest)) if start > 0 => rest.to_string(),
        _ => text.into_owned(),
    })
}

#[derive(Debug)]
pub enum FailureKind {
    CouldNotStart(io::Error),
    /// `None` when a signal ended it.
    Exited(Option<i32>),
    /// It ran past its time limit and was stopped.
    TimedOut(Duration),
    /// It printed more than [`CAPTURE_LIMIT`] on a captured standard output
    /// and was stopped.
    TooMuchOutput,
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
        let (step, command) = (&self.step, &self.command);
        match &self.kind {
            FailureKind::CouldNotStart(err) => {
                write!(f, "{step}: could not start `{command}`: {err}")?
            }
            FailureKind::Exited(Some(code)) => {
                write!(f, "{step}: `{command}` exited with status {code}")?
            }
            FailureKind::Exited(None) => write!(f, "{step}: `{command}` was killed by a signal")?,
            FailureKind::TimedOut(limit) => write!(
                f,
                "{step}: `{command}` did not finish within {}s and was stopped",
                limit.as_secs()
            )?,
            FailureKind::TooMuchOutput => write!(
                f,
                "{step}: `{command}` printed more than {} MiB on its standard output and was stopped",
                CAPTURE_LIMIT / (1024 * 1024)
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

    fn log_of(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name)).unwrap()
    }

    #[tokio::test]
    async fn captured_stdout_is_returned_and_stderr_logged_after_a_header() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::new(dir.path());
        let cmd = Command::new("sh")
            .args(["-c", "echo out; echo err >&2"])
            .dir(dir.path());
        let out = runner.run("say hello", cmd, Stdout::Capture).await.unwrap();
        assert_eq!(out, "out\n");
        let log = log_of(dir.path(), "say-hello.log");
        let (header, rest) = log.split_once('\n').unwrap();
        assert!(header.starts_with("# 20"), "{header}");
        assert!(
            header.ends_with(&format!(
                "`sh -c echo out; echo err >&2` in {}",
                dir.path().display()
            )),
            "{header}"
        );
        assert_eq!(rest, "err\n");
    }

    #[tokio::test]
    async fn both_streams_share_one_log_in_order_and_the_last_run_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::new(dir.path());
        let script = "echo first; echo second >&2; echo third; echo vagrant-error >&2; exit 1";
        let run = || runner.run("boot", Command::new("sh").args(["-c", script]), Stdout::Log);
        let err = run().await.unwrap_err();
        // stderr does not overwrite stdout: every line, in the order written.
        assert_eq!(
            &err.tail[1..],
            ["first", "second", "third", "vagrant-error"],
            "{err}"
        );
        let first = log_of(dir.path(), "boot.log");
        run().await.unwrap_err();
        assert_eq!(log_of(dir.path(), "boot.log.1"), first);
    }

    #[tokio::test]
    async fn failure_names_step_status_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::new(dir.path());
        let cmd =
            Command::new("sh").args(["-c", "for i in $(seq 30); do echo line $i; done; exit 7"]);
        let err = runner
            .run("boot agent", cmd, Stdout::Log)
            .await
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
    fn a_tail_survives_bytes_that_are_not_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("build.log");
        std::fs::write(&log, b"# header\nprogress \xff\xfe 50%\nerror: disk full\n").unwrap();
        assert_eq!(
            tail_of(&log),
            [
                "# header",
                "progress \u{fffd}\u{fffd} 50%",
                "error: disk full"
            ]
        );
    }

    #[test]
    fn a_tail_reads_only_the_end_of_a_long_log_and_no_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("build.log");
        // A first line longer than the window: the window starts inside it.
        let mut text = "x".repeat(TAIL_BYTES as usize + 10);
        text.push('\n');
        for i in 1..=20 {
            text.push_str(&format!("line {i}\n"));
        }
        std::fs::write(&log, &text).unwrap();
        let tail = tail_of(&log);
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail[0], "line 6");
        std::fs::write(&log, format!("{}\nlast\n", "x".repeat(TAIL_BYTES as usize))).unwrap();
        assert_eq!(tail_of(&log), ["last"], "the cut line is left out");
    }

    #[tokio::test]
    async fn captured_output_past_the_cap_fails_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::new(dir.path());
        let cmd = Command::new("head").args([
            "-c".to_string(),
            (CAPTURE_LIMIT + 1).to_string(),
            "/dev/zero".to_string(),
        ]);
        let err = runner
            .run("status", cmd, Stdout::Capture)
            .await
            .unwrap_err();
        assert!(matches!(err.kind, FailureKind::TooMuchOutput), "{err}");
        assert!(
            err.to_string()
                .contains("printed more than 16 MiB on its standard output"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn missing_program_could_not_start() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::new(dir.path());
        let cmd = Command::new("surely-not-a-program-here");
        let err = runner.run("probe", cmd, Stdout::Log).await.unwrap_err();
        assert!(matches!(err.kind, FailureKind::CouldNotStart(_)), "{err}");
    }
}
