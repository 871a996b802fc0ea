//! Failures that deserve their own exit code. Everything else is a plain
//! `anyhow::Error` and exits 1; `main` finds these anywhere in the chain.

use std::fmt;

/// Exit codes, as documented in the README.
pub mod exit {
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const MISSING_TOOL: u8 = 3;
    pub const UNREACHABLE: u8 = 4;
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug)]
pub enum Failure {
    /// Bad configuration or arguments: nothing ran.
    Usage(String),
    /// A required host tool is missing: nothing ran.
    MissingTool(String),
    /// The Kubernetes API could not be reached: nothing changed.
    Unreachable(String),
    /// Ctrl-C: what was done so far is kept, and the same command resumes.
    Interrupted,
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => exit::USAGE,
            Failure::MissingTool(_) => exit::MISSING_TOOL,
            Failure::Unreachable(_) => exit::UNREACHABLE,
            Failure::Interrupted => exit::INTERRUPTED,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(msg) | Failure::MissingTool(msg) | Failure::Unreachable(msg) => {
                f.write_str(msg)
            }
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
}
