//! The cluster's local state under `.orchestrator/` beside the configuration:
//! join token, kubeconfig, generated credentials and logs. Secrets are written
//! 0600, and atomically, so an interrupted write never leaves half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

#[derive(Debug, Clone)]
pub struct State {
    dir: PathBuf,
}

impl State {
    pub fn new(project_dir: &Path) -> Self {
        State {
            dir: project_dir.join(".orchestrator"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The K3s join token, generated on the host.
    pub fn token(&self) -> PathBuf {
        self.dir.join("token")
    }

    /// The cluster's own kubeconfig (server rewritten to the master's address).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Credentials generated once for the stack's Secrets.
    pub fn credentials(&self) -> PathBuf {
        self.dir.join("credentials.env")
    }

    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// Marks a machine whose `vagrant up` began and has not finished: a VM
    /// left running by a boot that failed or was interrupted.
    pub fn boot_marker(&self, machine: &str) -> PathBuf {
        self.dir.join("booting").join(machine)
    }
}

/// Writes `contents` to `path` readable by the owner only, via a temporary
/// file in the same directory and a rename; on failure the temporary file is
/// removed and `path` is untouched.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // tempfile creates it 0600 and deletes it when dropped unpersisted.
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    file.write_all(contents)
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.persist(path)
        .map_err(|err| err.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `bytes` random bytes from the OS, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source failed");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_files_are_0600_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/secret");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should go: the rename fails.
        let path = dir.path().join("taken");
        std::fs::create_dir(&path).unwrap();
        let err = write_private(&path, b"secret").unwrap_err();
        assert!(format!("{err:#}").contains("cannot write"), "{err:#}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["taken"]);
    }

    #[test]
    fn random_hex_has_the_asked_length() {
        let a = random_hex(16);
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_hex(16));
    }
}
