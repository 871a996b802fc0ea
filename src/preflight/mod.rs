//! Preflight: can this host do what the command is about to do? Run by `doctor`
//! (everything), by `create` and `start` before their first change, and by
//! `deploy` for Docker, so that a host that cannot work is told why and how to
//! fix it before anything boots, instead of a VM boot that hangs or a build
//! that fails half-way.
//!
//! Probing (running `vagrant --version`, reading `/proc/meminfo`, ...) is kept
//! apart from judging: [`rules::evaluate`] is a pure function from the probed
//! [`Facts`] to [`Finding`]s, so each rule is tested by feeding it facts.

mod probe;
mod rules;

use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::config::Config;
use crate::error::Failure;
use crate::prereq::Tool;
use crate::reporter::Reporter;

pub use probe::{Answer, Facts, HostFiles, ask, probe};
pub use rules::{Builder, MULTI_PLATFORM_FIX, evaluate};

/// How long one probe (`vagrant --version`, `docker version`, ...) may take
/// before it counts as not answering.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the checks are for: each command needs a part of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything the whole workflow needs.
    Doctor,
    /// New VMs: the tools, the provider, the host's limits.
    Create,
    /// Existing VMs booting again: as `Create`, without the box.
    Start,
    /// Docker, for building and for pushing as asked.
    Deploy { build: bool, push: bool },
}

impl Scope {
    fn vms(self) -> bool {
        matches!(self, Scope::Doctor | Scope::Create | Scope::Start)
    }

    /// Whether the box must be checked: `create` downloads a missing one
    /// itself, so only `doctor` looks at it.
    fn box_check(self) -> bool {
        self == Scope::Doctor
    }

    fn build(self) -> bool {
        match self {
            Scope::Doctor => true,
            Scope::Deploy { build, .. } => build,
            Scope::Create | Scope::Start => false,
        }
    }

    fn push(self) -> bool {
        match self {
            Scope::Doctor => true,
            Scope::Deploy { push, .. } => push,
            Scope::Create | Scope::Start => false,
        }
    }

    fn docker(self) -> bool {
        self.build() || self.push()
    }

    /// The host tools looked up on `PATH`.
    fn tools(self, config: &Config) -> Vec<Tool> {
        let mut tools = Vec::new();
        if self.vms() {
            tools.extend(crate::prereq::cluster_tools(config.cluster.provider));
        }
        if self.docker() {
            tools.push(Tool::Docker);
        }
        if self == Scope::Doctor {
            tools.push(Tool::Kubectl);
        }
        tools
    }

    /// What the command is about to do, for the error's first line.
    fn doing(self) -> &'static str {
        match self {
            Scope::Doctor => "run the workflow",
            Scope::Create => "create the cluster",
            Scope::Start => "start the cluster",
            Scope::Deploy {
                build: true,
                push: true,
            } => "build and push the images",
            Scope::Deploy {
                build: true,
                push: false,
            } => "build the images",
            Scope::Deploy { build: false, .. } => "push the images",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The operating system and CPU, and whether this is WSL.
    Host,
    /// A tool on `PATH`, with its version when it has one that matters.
    Tool(Tool),
    /// A tool not on `PATH` (a failure of its own: exit code 3).
    Missing(Tool),
    LibvirtPlugin,
    Box,
    HostOnlyNetwork,
    Kvm,
    Memory,
    DockerDaemon,
    Buildx,
    /// The buildx builder, and whether it can build several platforms at once.
    Builder,
    DockerLogin,
}

impl Subject {
    pub fn name(self) -> &'static str {
        match self {
            Subject::Host => "host",
            Subject::Tool(tool) | Subject::Missing(tool) => tool.name(),
            Subject::LibvirtPlugin => "vagrant-libvirt",
            Subject::Box => "box",
            Subject::HostOnlyNetwork => "host-only network",
            Subject::Kvm => "KVM",
            Subject::Memory => "memory",
            Subject::DockerDaemon => "docker daemon",
            Subject::Buildx => "docker buildx",
            Subject::Builder => "docker builder",
            Subject::DockerLogin => "docker login",
        }
    }
}

impl Serialize for Subject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// One check's verdict: what was found and, unless all is well, what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: Subject,
    pub level: Level,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Where a finding's message starts on its line, after the level and the check.
const MESSAGE_COLUMN: usize = 25;

impl Finding {
    pub fn ok(check: Subject, message: impl Into<String>) -> Self {
        Finding {
            check,
            level: Level::Ok,
            message: message.into(),
            fix: None,
        }
    }

    pub fn warn(check: Subject, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            check,
            level: Level::Warn,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(check: Subject, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            check,
            level: Level::Fail,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    /// `fail  NAME  message`, and the fix on the next line under the message.
    pub fn render(&self) -> String {
        let head = format!("{:<5} {}", self.level.as_str(), self.check.name());
        let mut text = format!(
            "{head:<width$} {}",
            self.message,
            width = MESSAGE_COLUMN - 1
        );
        if let Some(fix) = &self.fix {
            text.push_str(&format!("\n{:MESSAGE_COLUMN$}fix: {fix}", ""));
        }
        text
    }
}

/// The host as the checks saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub os: String,
    pub arch: String,
    pub wsl: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub warn: usize,
    pub fail: usize,
}

/// Every finding of one preflight.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub host: Host,
    pub findings: Vec<Finding>,
    pub summary: Summary,
    /// The builder the images would be built on, when it was asked.
    #[serde(skip)]
    pub builder: Option<Builder>,
}

impl Report {
    pub fn new(host: Host, findings: Vec<Finding>) -> Self {
        let count = |level| findings.iter().filter(|f| f.level == level).count();
        let summary = Summary {
            ok: count(Level::Ok),
            warn: count(Level::Warn),
            fail: count(Level::Fail),
        };
        Report {
            host,
            findings,
            summary,
            builder: None,
        }
    }

    pub fn at(&self, level: Level) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.level == level)
    }

    /// The error for this report's failures, if any, with `message` made of
    /// them: exit code 3 when a required tool is missing, else 5.
    pub fn failure(&self, message: impl FnOnce(&[&Finding]) -> String) -> Option<Failure> {
        let fails: Vec<&Finding> = self.at(Level::Fail).collect();
        if fails.is_empty() {
            return None;
        }
        let tool_missing = fails.iter().any(|f| matches!(f.check, Subject::Missing(_)));
        let text = message(&fails);
        Some(match tool_missing {
            true => Failure::MissingTool(text),
            false => Failure::HostNotReady(text),
        })
    }
}

/// Probes what `scope` needs on this host and judges it.
pub async fn check(config: &Config, scope: Scope, files: &HostFiles) -> Report {
    let facts = probe(config, scope, files, PROBE_TIMEOUT).await;
    let findings = evaluate(config, scope, &facts);
    let mut report = Report::new(
        Host {
            os: facts.os.clone(),
            arch: facts.arch.clone(),
            wsl: facts.wsl,
        },
        findings,
    );
    report.builder = Builder::of(&facts);
    report
}

/// Runs the preflight for `scope`: warnings go to `reporter`, and any failure
/// is an error that lists each with its fix (exit code 3 for a missing tool,
/// else 5). Nothing on the host is changed. Returns the report when it passes.
pub async fn require(
    config: &Config,
    scope: Scope,
    reporter: &dyn Reporter,
) -> Result<Report, Failure> {
    let report = check(config, scope, &HostFiles::from_env()).await;
    for warning in report.at(Level::Warn) {
        let fix = warning.fix.as_deref().map(|fix| format!(" (fix: {fix})"));
        reporter.warning(&format!(
            "{}: {}{}",
            warning.check.name(),
            warning.message,
            fix.unwrap_or_default()
        ));
    }
    match report.failure(|fails| {
        let lines: Vec<String> = fails.iter().map(|f| f.render()).collect();
        format!(
            "this host cannot {} yet; nothing was changed:\n{}\n(`orchestrator doctor` shows every check)",
            scope.doing(),
            lines.join("\n")
        )
    }) {
        Some(failure) => Err(failure),
        None => Ok(report),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_renders_its_fix_under_its_message() {
        let finding = Finding::fail(Subject::Memory, "too little", "buy more");
        assert_eq!(
            finding.render(),
            "fail  memory             too little\n                         fix: buy more"
        );
        assert_eq!(
            Finding::ok(Subject::Tool(Tool::Vagrant), "2.4.3").render(),
            "ok    vagrant            2.4.3"
        );
    }

    #[test]
    fn a_missing_tool_decides_the_exit_code() {
        let host = Host {
            os: "linux".into(),
            arch: "amd64".into(),
            wsl: false,
        };
        let memory = Finding::fail(Subject::Memory, "too little", "buy more");
        let tool = Finding::fail(Subject::Missing(Tool::Vagrant), "missing", "install it");
        let unfit = Finding::fail(Subject::Tool(Tool::Vagrant), "too old", "upgrade it");
        let warn = Finding::warn(Subject::Kvm, "loaded", "unload");
        let unfit_only = Report::new(host.clone(), vec![memory.clone(), unfit, warn.clone()]);
        let failure = unfit_only.failure(|f| f[0].message.clone()).unwrap();
        assert_eq!(failure.exit_code(), crate::error::exit::HOST_NOT_READY);
        assert_eq!(failure.to_string(), "too little");
        let both = Report::new(host.clone(), vec![memory, tool]);
        assert_eq!(
            both.failure(|_| String::new()).unwrap().exit_code(),
            crate::error::exit::MISSING_TOOL
        );
        let warned = Report::new(host, vec![warn]);
        assert!(warned.failure(|_| String::new()).is_none());
        assert_eq!(
            warned.summary,
            Summary {
                ok: 0,
                warn: 1,
                fail: 0
            }
        );
    }

    #[test]
    fn each_command_checks_its_part() {
        let config = Config::default();
        assert_eq!(
            Scope::Create.tools(&config),
            [Tool::Vagrant, Tool::VirtualBox]
        );
        assert_eq!(
            Scope::Deploy {
                build: false,
                push: true
            }
            .tools(&config),
            [Tool::Docker]
        );
        assert!(
            Scope::Deploy {
                build: false,
                push: false
            }
            .tools(&config)
            .is_empty()
        );
        assert_eq!(
            Scope::Doctor.tools(&config),
            [Tool::Vagrant, Tool::VirtualBox, Tool::Docker, Tool::Kubectl]
        );
    }
}
