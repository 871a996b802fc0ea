//! The fake `docker` of the CLI tests: it records every call and answers what
//! the preflight asks and what `deploy` builds, pushes and saves.

use std::path::{Path, PathBuf};

use super::FakeBin;

/// What a deploy that builds and pushes asks docker before anything is built
/// (`src/preflight/probe.rs`), sorted as [`FakeDocker::sorted_calls`] returns them.
pub const PREFLIGHT_CALLS: [&str; 4] = [
    "buildx inspect",
    "buildx version",
    "info --format {{json .DriverStatus}}",
    "version --format {{.Server.Version}}",
];

/// The script; `@CALLS@` is replaced by the file it appends each call to. Environment:
/// - `FAKE_DOCKER_DAEMON`: what the daemon says instead of answering `version`;
/// - `FAKE_DOCKER_NO_BUILDX`: set, the buildx plugin is missing;
/// - `FAKE_DOCKER_FAIL_BUILD`: the image whose `buildx build` fails, after a second;
/// - `FAKE_DOCKER_PIDS`: a file every other build appends its pid to, then
///   builds for 8 s and appends its pid to `$FAKE_DOCKER_PIDS.finished`.
///
/// `buildx build` writes the metadata buildx writes (a digest); `save -o FILE
/// REF` writes a stand-in archive naming REF.
const SCRIPT: &str = r#"#!/bin/sh
echo "$*" >> '@CALLS@'
case "$1 $2" in
"version --format")
  if [ -n "$FAKE_DOCKER_DAEMON" ]; then echo "$FAKE_DOCKER_DAEMON" >&2; exit 1; fi
  echo 27.3.1 ;;
"buildx version")
  if [ -n "$FAKE_DOCKER_NO_BUILDX" ]; then echo "docker: 'buildx' is not a docker command." >&2; exit 1; fi
  echo "github.com/docker/buildx v0.17.1 257815a" ;;
"buildx build")
  prev=""; meta=""; ref=""
  for arg in "$@"; do
    case "$prev" in
      --metadata-file) meta=$arg ;;
      -t) ref=$arg ;;
    esac
    prev=$arg
  done
  name=${ref##*/}; name=${name%%:*}
  if [ -n "$FAKE_DOCKER_FAIL_BUILD" ] && [ "$name" = "$FAKE_DOCKER_FAIL_BUILD" ]; then
    sleep 1; echo "error: failed to solve: $name" >&2; exit 1
  fi
  if [ -n "$FAKE_DOCKER_PIDS" ]; then
    echo $$ >> "$FAKE_DOCKER_PIDS"; sleep 8; echo $$ >> "$FAKE_DOCKER_PIDS.finished"; exit
  fi
  if [ -n "$meta" ]; then
    echo "{\"containerimage.digest\": \"sha256:0123456789abcdef\", \"image.name\": \"$ref\"}" > "$meta"
  fi
  ;;
"save -o") echo "archive of $4" > "$3" ;;
esac
"#;

/// The fake `docker` in a [`FakeBin`], and the calls it received.
pub struct FakeDocker {
    calls: PathBuf,
}

impl FakeDocker {
    /// Writes the fake `docker` into `bin`; it records its calls in `dir/docker-calls`.
    pub fn install(bin: &FakeBin, dir: &Path) -> Self {
        let calls = dir.join("docker-calls");
        bin.write(
            "docker",
            &SCRIPT.replace("@CALLS@", &calls.to_string_lossy()),
        );
        FakeDocker { calls }
    }

    /// Whether docker was called at all.
    pub fn called(&self) -> bool {
        self.calls.exists()
    }

    /// Every call so far, one line of arguments each, in the order they came.
    pub fn calls(&self) -> String {
        std::fs::read_to_string(&self.calls).unwrap_or_default()
    }

    /// The calls, sorted: the preflight asks its questions side by side, in no set order.
    pub fn sorted_calls(&self) -> Vec<String> {
        let mut calls: Vec<String> = self.calls().lines().map(str::to_string).collect();
        calls.sort();
        calls
    }
}
