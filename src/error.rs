//! Failures that deserve their own exit code. Everything else is a plain
//! `anyhow::Error` and exits 1; `main` finds these anywhere in the chain.

use std::fmt;

/// Exit codes: `--help` lists [`exit::TABLE`], and the README's table repeats it (tested).
pub mod exit {
    pub const SUCCESS: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const MISSING_TOOL: u8 = 3;
    pub const UNREACHABLE: u8 = 4;
    pub const HOST_NOT_READY: u8 = 5;
    pub const AUDIT_FAILED: u8 = 6;
    pub const INTERRUPTED: u8 = 130;

    /// Every exit code and what it means.
    pub const TABLE: [(u8, &str); 8] = [
        (SUCCESS, "success"),
        (
            FAILED,
            "the command failed (a step, a rollout, a request); the message says which and why",
        ),
        (
            USAGE,
            "usage or configuration error (bad flag, bad `orchestrator.toml`, bad manifests, `destroy` without `--yes` off a terminal); nothing ran",
        ),
        (
            MISSING_TOOL,
            "a required tool is missing (`doctor` lists it with install hints); nothing ran",
        ),
        (
            UNREACHABLE,
            "the Kubernetes API could not be reached; the kubeconfig and context tried are named; nothing changed",
        ),
        (
            HOST_NOT_READY,
            "the host is not ready (a preflight check failed: versions, addresses, memory, the Docker daemon); `doctor` shows each finding with its fix; nothing ran",
        ),
        (
            AUDIT_FAILED,
            "`verify` ran and the audit did not pass: a check failed or could not run",
        ),
        (
            INTERRUPTED,
            "interrupted (Ctrl-C); run the same command again to resume",
        ),
    ];
}

#[derive(Debug)]
pub enum Failure {
    /// Bad configuration or arguments: nothing ran.
    Usage(String),
    /// A required host tool is missing: nothing ran.
    MissingTool(String),
    /// The Kubernetes API could not be reached: nothing changed.
    Unreachable(String),
    /// A preflight check failed (versions, addresses, memory, Docker daemon): nothing ran.
    HostNotReady(String),
    /// `verify` ran to its end and the audit did not pass (the tool itself worked).
    AuditFailed(String),
    /// Ctrl-C: what was done so far is kept, and the same command resumes.
    Interrupted,
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => exit::USAGE,
            Failure::MissingTool(_) => exit::MISSING_TOOL,
            Failure::Unreachable(_) => exit::UNREACHABLE,
            Failure::HostNotReady(_) => exit::HOST_NOT_READY,
            Failure::AuditFailed(_) => exit::AUDIT_FAILED,
            Failure::Interrupted => exit::INTERRUPTED,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(msg)
            | Failure::MissingTool(msg)
            | Failure::Unreachable(msg)
            | Failure::HostNotReady(msg)
            | Failure::AuditFailed(msg) => f.write_str(msg),
            Failure::Interrupted => {
                f.write_str("interrupted; run the same command again to resume")
            }
        }
    }
}

impl std::error::Error for Failure {}

/// The exit code for an error: the first `Failure` in its chain decides.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Failure>())
        .map_or(exit::FAILED, Failure::exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn exit_code_is_found_under_context() {
        let err = Err::<(), _>(Failure::MissingTool("vagrant".into()))
            .context("checking prerequisites")
            .unwrap_err();
        assert_eq!(exit_code(&err), exit::MISSING_TOOL);
        assert_eq!(exit_code(&anyhow::anyhow!("boom")), exit::FAILED);
    }

    const README: &str = include_str!("../README.md");

    /// The README's text with every run of whitespace made one space, so
    /// that a sentence reads the same wherever its lines are wrapped.
    fn readme_prose() -> String {
        README.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn the_readme_table_is_the_exit_code_table() {
        let section = README
            .split_once("\n## Exit codes\n")
            .expect("README.md has an \"Exit codes\" section")
            .1;
        let section = section.split("\n## ").next().unwrap_or(section);
        let rows: Vec<(u8, &str)> = section
            .lines()
            .filter_map(|line| {
                let cells = line.strip_prefix("| ")?.strip_suffix(" |")?;
                let (code, meaning) = cells.split_once(" | ")?;
                Some((code.parse().ok()?, meaning))
            })
            .collect();
        assert_eq!(rows, exit::TABLE, "README.md's exit-code table");
    }

    #[test]
    fn the_readme_prose_gives_the_codes_of_the_code() {
        let prose = readme_prose();
        let claims = [
            format!(
                "It exits {} when nothing failed (warnings allowed), {} when a required tool is missing, {} when another check failed",
                exit::SUCCESS,
                exit::MISSING_TOOL,
                exit::HOST_NOT_READY
            ),
            format!(
                "The exit code is {} only when every check passed",
                exit::SUCCESS
            ),
            format!(
                "(skipped, e.g. `registry.namespace` unset), makes it {}:",
                exit::AUDIT_FAILED
            ),
            format!(
                "an unreachable Kubernetes API is {}, anything else that stopped verify is {}",
                exit::UNREACHABLE,
                exit::FAILED
            ),
            format!("not found on PATH** (exit {})", exit::MISSING_TOOL),
        ];
        for claim in &claims {
            assert!(prose.contains(claim.as_str()), "README.md lacks: {claim}");
        }
        // No other "(exit N)" than those the table has.
        for mention in prose.split("(exit ").skip(1) {
            let code: String = mention.chars().take_while(char::is_ascii_digit).collect();
            assert!(
                code.is_empty()
                    || exit::TABLE
                        .iter()
                        .any(|(known, _)| known.to_string() == code),
                "README.md mentions (exit {code}), which is no exit code"
            );
        }
    }
}
