//! Helpers for the CLI tests: a directory of fake executables that is the
//! whole `PATH` of the binary under test, so a test decides exactly which host
//! tools exist (the real `vagrant` or `docker` of the machine never runs).
// Each test crate uses a part of this module.
#![allow(dead_code)]

pub mod docker;
pub mod kube_sim;
pub mod project;
pub mod release;
pub mod vagrant;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The basic utilities fake scripts may call, linked into every fake `PATH`.
const UTILITIES: &[&str] = &[
    "sh", "bash", "cat", "mkdir", "sleep", "rm", "date", "env", "tr", "sed", "grep", "touch",
    "seq", "head", "tail", "cut", "ls", "dirname", "basename", "mv", "cp", "sort",
];

/// A `bin` directory holding fake programs and links to the basic utilities.
pub struct FakeBin {
    dir: PathBuf,
}

impl FakeBin {
    pub fn new(root: &Path) -> Self {
        let dir = root.join("bin");
        std::fs::create_dir_all(&dir).unwrap();
        for tool in UTILITIES {
            if let Some(real) = ["/usr/bin", "/bin"]
                .iter()
                .map(|d| Path::new(d).join(tool))
                .find(|p| p.exists())
            {
                std::os::unix::fs::symlink(real, dir.join(tool)).unwrap();
            }
        }
        FakeBin { dir }
    }

    /// Writes an executable `name` with `script` as its text (start it with a `#!` line).
    pub fn write(&self, name: &str, script: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// A program that records each call's arguments, one line per call, in
    /// `FILE` and succeeds.
    pub fn recorder(&self, name: &str, file: &Path) -> PathBuf {
        let script = format!("#!/bin/sh\necho \"$*\" >> '{}'\n", file.display());
        self.write(name, &script)
    }

    /// The value for `PATH`: only this directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// The processes whose pids `file` lists, one a line, that still run a
/// moment later (a SIGKILL takes effect when the process is next scheduled;
/// zombies do not count).
pub fn survivors(file: &Path) -> Vec<String> {
    let pids = std::fs::read_to_string(file).unwrap_or_default();
    assert!(
        !pids.is_empty(),
        "no process recorded its pid in {}",
        file.display()
    );
    let alive = || -> Vec<String> {
        pids.lines()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|stat| !stat.contains(") Z "))
            })
            .map(String::from)
            .collect()
    };
    for _ in 0..50 {
        if alive().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    alive()
}

/// The file's permission bits.
pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
