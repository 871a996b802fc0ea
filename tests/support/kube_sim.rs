//! kube-sim, the real API server the cluster tests run against; its
//! kubeconfig's path comes from `KUBE_SIM_KUBECONFIG` (`../shared/kube-sim/up.sh`
//! prints it).
//!
//! One kube-sim serves every cluster test, so the fault drills (a node halted,
//! the API server restarted) must not run beside tests that expect a quiet
//! cluster. A file lock in kube-sim's state directory keeps them apart, also
//! across processes: an ordinary test binary holds it shared for its whole run
//! (taken by [`kubeconfig`]), a fault drill holds it alone ([`exclusive`]). So a
//! test binary holds either ordinary tests or fault drills, never both.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn kubeconfig_path() -> String {
    std::env::var("KUBE_SIM_KUBECONFIG")
        .expect("set KUBE_SIM_KUBECONFIG to kube-sim's kubeconfig to run this test")
}

/// The state directory `up.sh` was given: the kubeconfig's directory.
fn state_dir(kubeconfig: &str) -> PathBuf {
    Path::new(kubeconfig)
        .parent()
        .expect("the kubeconfig path has a directory")
        .to_path_buf()
}

fn lock_file(kubeconfig: &str) -> File {
    let path = state_dir(kubeconfig).join("tests.lock");
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|err| panic!("cannot open {}: {err}", path.display()))
}

/// The kubeconfig's path, for an ordinary cluster test (a cluster test cannot
/// run without it). Takes this process's shared hold on kube-sim.
pub fn kubeconfig() -> String {
    static SHARED: OnceLock<File> = OnceLock::new();
    let kubeconfig = kubeconfig_path();
    SHARED.get_or_init(|| {
        let file = lock_file(&kubeconfig);
        file.lock_shared().expect("cannot lock kube-sim shared");
        file
    });
    kubeconfig
}

/// kube-sim held alone by a fault drill until this is dropped; the faults it
/// can cause are undone by then (nodes up again).
pub struct Exclusive {
    pub kubeconfig: String,
    script_dir: PathBuf,
    nodes_down: Vec<String>,
    _lock: File,
}

/// Waits until no other test uses kube-sim, then holds it alone.
pub fn exclusive() -> Exclusive {
    let kubeconfig = kubeconfig_path();
    let lock = lock_file(&kubeconfig);
    lock.lock().expect("cannot lock kube-sim exclusively");
    Exclusive {
        kubeconfig,
        script_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/kube-sim"),
        nodes_down: Vec::new(),
        _lock: lock,
    }
}

impl Exclusive {
    fn script(&self, name: &str, args: &[&str]) {
        let state = state_dir(&self.kubeconfig);
        let out = Command::new(self.script_dir.join(name))
            .args(args)
            .arg(&state)
            .output()
            .unwrap_or_else(|err| panic!("cannot run kube-sim's {name}: {err}"));
        assert!(
            out.status.success(),
            "kube-sim's {name} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the node's heartbeat, as `vagrant halt` would (`node.sh down`).
    pub fn node_down(&mut self, node: &str) {
        self.script("node.sh", &["down", node]);
        self.nodes_down.push(node.to_string());
    }

    /// Starts the node's heartbeat again (`node.sh up`).
    pub fn node_up(&mut self, node: &str) {
        self.script("node.sh", &["up", node]);
        self.nodes_down.retain(|n| n != node);
    }

    /// The shell command that starts the node's heartbeat again, for a fake
    /// tool to run (as a provisioning that repairs the node would).
    pub fn node_up_command(&self, node: &str) -> String {
        format!(
            "{} up {node} {}",
            self.script_dir.join("node.sh").display(),
            state_dir(&self.kubeconfig).display()
        )
    }

    /// Restarts the API server, keeping it down `down_secs` seconds
    /// (`restart-apiserver.sh`; blocks until it is back).
    pub fn restart_apiserver(&self, down_secs: u32) {
        let state = state_dir(&self.kubeconfig);
        let out = Command::new(self.script_dir.join("restart-apiserver.sh"))
            .arg(&state)
            .arg(down_secs.to_string())
            .output()
            .expect("cannot run kube-sim's restart-apiserver.sh");
        assert!(
            out.status.success(),
            "restart-apiserver.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        for node in std::mem::take(&mut self.nodes_down) {
            self.script("node.sh", &["up", &node]);
        }
    }
}

/// A client of kube-sim, connected the way the binary connects.
pub async fn client(kubeconfig: &str) -> kube::Client {
    let target = orchestrator::kubeapi::Target {
        kubeconfig: Some(kubeconfig.into()),
        context: None,
    };
    orchestrator::kubeapi::connect(&target)
        .await
        .unwrap()
        .client
}

/// A namespace name of a test's own; the namespace is deleted (without
/// waiting) when this is dropped, also when the test fails.
pub struct TestNamespace {
    pub name: String,
    kubeconfig: String,
}

impl TestNamespace {
    pub fn new(prefix: &str, kubeconfig: &str) -> Self {
        TestNamespace {
            name: format!("{prefix}-{}", orchestrator::state::random_hex(4)),
            kubeconfig: kubeconfig.into(),
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kubectl")
            .args([
                "--kubeconfig",
                &self.kubeconfig,
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
            ])
            .output();
    }
}
