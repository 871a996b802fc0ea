//! The cluster's local state under `.orchestrator/` beside the configuration:
//! join token, kubeconfig, generated credentials and logs. Secrets are written
//! 0600, and atomically, so an interrupted write never leaves half a file.

use std::fs::File;
use std::io::{Read, Seek, Write};
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

/// Held while a run changes the project (its VMs, its cluster, the files
/// under `.orchestrator/`): two runs at once would rotate each other's logs
/// and race on `images.json`. The lock is the OS's on `.orchestrator/lock`,
/// so a run that dies frees it; the file holds the holder's pid. A run that
/// leaves nothing else in `.orchestrator/` (it failed before any change)
/// removes the file and the directory, so that nothing is left behind.
#[derive(Debug)]
pub struct RunLock {
    /// Closing it releases the lock.
    _held: File,
    dir: PathBuf,
}

impl State {
    fn lock_file(&self) -> PathBuf {
        self.dir.join("lock")
    }

    /// Takes the project's [`RunLock`]; while another run holds it, calls
    /// `waiting` with that run's pid (if it could be read) and waits.
    pub async fn lock(&self, waiting: impl FnOnce(Option<u32>)) -> anyhow::Result<RunLock> {
        let path = self.lock_file();
        let cannot = || format!("cannot lock {}", path.display());
        let mut waiting = Some(waiting);
        loop {
            std::fs::create_dir_all(&self.dir).with_context(cannot)?;
            let mut file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .with_context(cannot)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    if let Some(waiting) = waiting.take() {
                        waiting(holder.trim().parse().ok());
                    }
                    // A blocking call: on a thread of its own, so that Ctrl-C
                    // is still heard while waiting.
                    file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
                        .await
                        .context("the wait for the lock failed")?
                        .with_context(cannot)?;
                }
                Err(std::fs::TryLockError::Error(err)) => return Err(err).with_context(cannot),
            }
            // The holder we waited for may have removed the file (see
            // `RunLock`): a lock on a file no longer at `path` locks nothing.
            if !is_the_file_at(&file, &path) {
                continue;
            }
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| write!(file, "{}", std::process::id()))
                .with_context(cannot)?;
            return Ok(RunLock {
                _held: file,
                dir: self.dir.clone(),
            });
        }
    }
}

fn is_the_file_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(named)) => (open.dev(), open.ino()) == (named.dev(), named.ino()),
        _ => false,
    }
}

impl Drop for RunLock {
    // Runs before `held` is closed: the file is removed under the lock.
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let names: Vec<_> = entries
            .filter_map(|entry| entry.ok().map(|e| e.file_name()))
            .collect();
        if names.len() == 1 && names[0] == "lock" {
            let _ = std::fs::remove_file(self.dir.join("lock"));
            let _ = std::fs::remove_dir(&self.dir);
        }
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

    #[tokio::test]
    async fn the_lock_holds_the_pid_and_a_second_taker_learns_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(dir.path());
        let held = state.lock(|_| panic!("nobody holds it")).await.unwrap();
        let pid = std::fs::read_to_string(state.lock_file()).unwrap();
        assert_eq!(pid, std::process::id().to_string());
        let (told, heard) = tokio::sync::oneshot::channel();
        let project = dir.path().to_path_buf();
        let second = tokio::spawn(async move {
            State::new(&project)
                .lock(|holder| told.send(holder).unwrap())
                .await
        });
        assert_eq!(heard.await.unwrap(), Some(std::process::id()));
        assert!(!second.is_finished(), "taken while held");
        drop(held);
        let second = second.await.unwrap().unwrap();
        let pid = std::fs::read_to_string(state.lock_file()).unwrap();
        assert_eq!(pid, std::process::id().to_string());
        drop(second);
        assert!(
            !state.dir().exists(),
            "a run that changed nothing leaves nothing"
        );
    }

    #[test]
    fn random_hex_has_the_asked_length() {
        let a = random_hex(16);
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_hex(16));
    }
}
