//! `scripts/k3s-node.sh`, the provisioning script that runs inside each VM, run
//! here against fake `systemctl`, `journalctl`, `ip`, `curl` and `ethtool` and a
//! fake K3s release: every path it writes is pointed into a scratch directory.
//! The fake `systemctl` behaves like K3s's unit (`TimeoutStartSec=0`): a
//! blocking `restart` of a service that never becomes ready never returns.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/k3s-node.sh");

/// The longest any run may take: far above what a passing run needs, far below
/// a blocked `systemctl restart`.
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// A fake VM: its `PATH` of fakes, its files, and what the fakes recorded.
struct Vm {
    root: tempfile::TempDir,
}

/// How the fake K3s service behaves once started.
#[derive(Clone, Copy)]
enum Service {
    /// Becomes active (the node joined).
    Joins,
    /// Never becomes active; the journal says the token is wrong.
    WrongToken,
    /// Never becomes active and says nothing fatal (an unreachable server).
    Hangs,
    /// Becomes active on the second look, while systemd still counts the
    /// restarts of an earlier failed run (a repaired token).
    RejoinsAfterFailures,
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Vm {
    fn new(service: Service) -> Vm {
        let vm = Vm {
            root: tempfile::tempdir().unwrap(),
        };
        let (polls_before_active, restarts) = match service {
            Service::RejoinsAfterFailures => (1, 3),
            _ => (0, 0),
        };
        let (active, journal) = match service {
            Service::Joins | Service::RejoinsAfterFailures => ("active", "k3s agent is up"),
            Service::WrongToken => (
                "activating",
                "level=fatal msg=\"Failed to validate connection to cluster at https://192.168.56.10:6443: token is not valid\"",
            ),
            Service::Hangs => (
                "activating",
                "level=info msg=\"Waiting to retrieve agent configuration; server is not ready\"",
            ),
        };
        // The unit starts (and, for a blocking restart, is waited on) only after
        // a restart; `is-active` tells its state from then on.
        vm.fake(
            "systemctl",
            &format!(
                r#"#!/bin/sh
echo "systemctl $*" >> "$VM/calls"
case "$1" in
  restart)
    touch "$VM/started"
    [ "$2" = --no-block ] && exit 0
    [ "{active}" = active ] && exit 0
    exec sleep 60 ;;
  is-active)
    [ -f "$VM/started" ] || {{ echo inactive; exit 3; }}
    echo x >> "$VM/polls"
    [ "$(wc -l < "$VM/polls")" -gt {polls_before_active} ] || {{ echo activating; exit 3; }}
    [ "$2" = --quiet ] || echo {active}
    [ "{active}" = active ] ;;
  show) echo {restarts} ;;
  *) exit 0 ;;
esac
"#
            ),
        );
        vm.fake(
            "journalctl",
            &format!("#!/bin/sh\n[ -f \"$VM/started\" ] && echo '{journal}'\nexit 0\n"),
        );
        vm.fake(
            "ip",
            "#!/bin/sh\necho '1: lo    inet 127.0.0.1/8 scope host lo'\necho '3: eth1    inet 192.168.56.11/24 brd 192.168.56.255 scope global eth1'\n",
        );
        // `curl -o FILE https://get.k3s.io` (the download without a release dir) gets the fake installer.
        vm.fake(
            "curl",
            r#"#!/bin/sh
echo "curl $*" >> "$VM/calls"
while [ $# -gt 0 ]; do
  [ "$1" = -o ] && cp "$VM/release/install.sh" "$2"
  shift
done
exit 0
"#,
        );
        vm.fake(
            "ethtool",
            "#!/bin/sh\necho \"ethtool $*\" >> \"$VM/calls\"\n",
        );
        // The release: a `k3s` that knows its version, and an installer that
        // behaves like K3s's: it starts the service (a blocking restart) unless
        // told to skip the start.
        let release = vm.path("release");
        std::fs::create_dir_all(&release).unwrap();
        write_exec(
            &release.join("k3s"),
            "#!/bin/sh\necho 'k3s version v1.31.6+k3s1 (fake)'\n",
        );
        write_exec(
            &release.join("install.sh"),
            r#"#!/bin/sh
env | grep '^INSTALL_K3S_' | sort > "$VM/installer-env"
[ "$INSTALL_K3S_SKIP_START" = true ] && exit 0
systemctl restart k3s-agent || exit 1
"#,
        );
        std::fs::write(vm.path("os-release"), "ID=debian\nVERSION_ID=\"12\"\n").unwrap();
        vm
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    fn fake(&self, name: &str, script: &str) {
        std::fs::create_dir_all(self.path("bin")).unwrap();
        write_exec(&self.path("bin").join(name), script);
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.path("calls")).unwrap_or_default()
    }

    /// Runs `k3s-node.sh agent` as Vagrant's provisioner would, plus `extra` variables.
    fn provision_agent(&self, extra: &[(&str, &str)]) -> Run {
        let path = format!("{}:/usr/bin:/bin", self.path("bin").display());
        let mut cmd = Command::new("bash");
        cmd.arg(SCRIPT)
            .arg("agent")
            .env_clear()
            .env("PATH", path)
            .env("VM", self.root.path())
            .env("INSTALL_K3S_VERSION", "v1.31.6+k3s1")
            .env("K3S_TOKEN", "the-cluster-token")
            .env("NODE_NAME", "agent")
            .env("NODE_IP", "192.168.56.11")
            .env("MASTER_IP", "192.168.56.10")
            .env("MASTER_WAIT_SECONDS", "5")
            .env("STATE_DIR", self.path("state"))
            .env("INSTALL_LOG", self.path("install.log"))
            .env("K3S_BIN", self.path("usr-local-bin-k3s"))
            .env("NODE_PASSWORD_FILE", self.path("etc-rancher-node/password"))
            .env("UDEV_RULES_DIR", self.path("udev-rules"))
            .env("OS_RELEASE", self.path("os-release"))
            .envs(extra.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let code = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status.code();
            }
            if started.elapsed() > RUN_LIMIT {
                // A blocked `systemctl restart`: kill the script (its fake sleep dies with the test dir).
                child.kill().unwrap();
                child.wait().unwrap();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let took = started.elapsed();
        let output = child.wait_with_output().unwrap();
        Run {
            code,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            took,
        }
    }

    /// Runs `k3s-node.sh agent` with the host's copy of the release in
    /// `K3S_RELEASE_DIR`, as `create` provisions, plus `extra` variables.
    fn provision_agent_from_release(&self, extra: &[(&str, &str)]) -> Run {
        let release = self.path("release").display().to_string();
        let mut vars = vec![("K3S_RELEASE_DIR", release.as_str())];
        vars.extend_from_slice(extra);
        self.provision_agent(&vars)
    }
}

impl Run {
    /// Panics with both streams unless the script exited with `code`.
    fn expect_code(&self, code: i32) {
        assert_eq!(
            self.code,
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }
}

fn write_exec(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn an_agent_with_a_wrong_token_fails_fast_and_prints_its_journal() {
    let vm = Vm::new(Service::WrongToken);
    let run = vm.provision_agent_from_release(&[]);
    assert!(
        run.code.is_some(),
        "k3s-node.sh blocked on systemd for {:?}; stdout:\n{}\nstderr:\n{}",
        run.took,
        run.stdout,
        run.stderr
    );
    assert_ne!(run.code, Some(0), "{}", run.stdout);
    assert!(run.took < Duration::from_secs(10), "took {:?}", run.took);
    assert!(
        run.stderr.contains("token is not valid")
            && run.stderr.contains("k3s-agent service did not start")
            && run.stderr.contains("vagrant provision agent"),
        "stderr:\n{}",
        run.stderr
    );
    assert!(
        !vm.path("state/k3s-agent.settings").exists(),
        "a failed join must not be recorded as provisioned"
    );
}

#[test]
fn a_repaired_agent_joins_although_systemd_still_counts_the_failed_run() {
    let vm = Vm::new(Service::RejoinsAfterFailures);
    vm.provision_agent_from_release(&[]).expect_code(0);
    assert!(vm.path("state/k3s-agent.settings").exists());
}

#[test]
fn an_agent_that_never_starts_gives_up_at_its_deadline() {
    let vm = Vm::new(Service::Hangs);
    let run = vm.provision_agent_from_release(&[("K3S_START_SECONDS", "3")]);
    run.expect_code(1);
    assert!(
        run.took >= Duration::from_secs(3) && run.took < Duration::from_secs(10),
        "took {:?}",
        run.took
    );
    assert!(
        run.stderr
            .contains("Waiting to retrieve agent configuration"),
        "the journal's last lines are shown:\n{}",
        run.stderr
    );
}

#[test]
fn the_host_copy_of_the_release_is_installed_without_any_download() {
    let vm = Vm::new(Service::Joins);
    vm.provision_agent_from_release(&[]).expect_code(0);
    let installer_env = std::fs::read_to_string(vm.path("installer-env")).unwrap();
    assert!(
        installer_env.contains("INSTALL_K3S_SKIP_DOWNLOAD=true")
            && installer_env.contains("INSTALL_K3S_SKIP_START=true"),
        "{installer_env}"
    );
    assert!(
        !vm.calls().contains("get.k3s.io"),
        "nothing downloaded: {}",
        vm.calls()
    );
    assert!(
        vm.calls()
            .contains("systemctl restart --no-block k3s-agent")
    );
    let installed = std::fs::read_to_string(vm.path("usr-local-bin-k3s")).unwrap();
    assert!(installed.contains("v1.31.6+k3s1"));
    // Provisioned once, a re-run changes nothing.
    let again = vm.provision_agent_from_release(&[]);
    again.expect_code(0);
    assert!(again.stdout.contains("nothing to do"), "{}", again.stdout);
}

#[test]
fn without_a_release_dir_the_vm_downloads_the_installer() {
    let vm = Vm::new(Service::Joins);
    vm.provision_agent(&[]).expect_code(0);
    assert!(vm.calls().contains("https://get.k3s.io"), "{}", vm.calls());
    let installer_env = std::fs::read_to_string(vm.path("installer-env")).unwrap();
    assert!(!installer_env.contains("INSTALL_K3S_SKIP_DOWNLOAD"));
}

#[test]
fn a_re_created_vm_presents_the_same_node_password() {
    let first = Vm::new(Service::Joins);
    let second = Vm::new(Service::Joins);
    for vm in [&first, &second] {
        vm.provision_agent_from_release(&[]).expect_code(0);
    }
    let password = |vm: &Vm| std::fs::read_to_string(vm.path("etc-rancher-node/password")).unwrap();
    assert_eq!(password(&first), password(&second));
    assert_eq!(password(&first).trim().len(), 32);
    assert!(!password(&first).contains("the-cluster-token"));

    // Another node name or another cluster token: another password.
    let other = Vm::new(Service::Joins);
    other
        .provision_agent_from_release(&[("K3S_TOKEN", "another")])
        .expect_code(0);
    assert_ne!(password(&first), password(&other));
}

#[test]
fn an_existing_node_password_is_kept() {
    let vm = Vm::new(Service::Joins);
    std::fs::create_dir_all(vm.path("etc-rancher-node")).unwrap();
    std::fs::write(vm.path("etc-rancher-node/password"), "chosen-by-k3s\n").unwrap();
    vm.provision_agent_from_release(&[]).expect_code(0);
    assert_eq!(
        std::fs::read_to_string(vm.path("etc-rancher-node/password")).unwrap(),
        "chosen-by-k3s\n"
    );
}

#[test]
fn ubuntu_24_04_gets_the_flannel_checksum_offload_workaround() {
    let vm = Vm::new(Service::Joins);
    std::fs::write(vm.path("os-release"), "ID=ubuntu\nVERSION_ID=\"24.04\"\n").unwrap();
    vm.provision_agent_from_release(&[]).expect_code(0);
    let rule = std::fs::read_to_string(vm.path("udev-rules/90-flannel-checksum.rules")).unwrap();
    assert!(
        rule.contains("KERNEL==\"flannel.1\"")
            && rule.contains("ethtool -K flannel.1 tx-checksum-ip-generic off"),
        "{rule}"
    );
}

#[test]
fn other_guests_get_no_flannel_workaround() {
    let vm = Vm::new(Service::Joins);
    vm.provision_agent_from_release(&[]).expect_code(0);
    assert!(!vm.path("udev-rules").exists());
}
