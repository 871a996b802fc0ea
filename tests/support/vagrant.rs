//! A project directory with a fake `vagrant` that keeps machine states in
//! files, records every call, can fail a chosen step and sleeps a set delay
//! per step; and a way to run the built binary in it with `HOME` and
//! `KUBECONFIG` inside the sandbox.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::FakeBin;

/// The fake `vagrant`. Environment:
/// - `FAKE_VAGRANT_DIR`: its state (`calls`, `env`, `cwd`, `machines/NAME`, `boxes`);
/// - `FAKE_VAGRANT_FAIL`: space-separated `VERB:MACHINE` steps that exit 1 (`status`: every status);
/// - `FAKE_VAGRANT_DELAY`: seconds each up, reload, provision, halt and box add takes;
/// - `FAKE_VAGRANT_PIDS`: a file each call appends its pid to;
/// - `FAKE_VAGRANT_EVENTS`: a file each step appends `start VERB MACHINE` and `end VERB MACHINE` to;
/// - `FAKE_VAGRANT_AFTER`: space-separated `VERB:MACHINE>VERB:MACHINE` rules: the first step
///   starts only once the second has started (read from the events; at most 60 s);
/// - `FAKE_VAGRANT_HANG`: space-separated `VERB:MACHINE` steps that take an hour (an agent
///   waiting for a master that never answers);
/// - `FAKE_VAGRANT_ON_PROVISION`: a shell command `provision` runs (as if K3s came back);
/// - `FAKE_VAGRANT_K3S_YAML`: a file `ssh master -c ...` prints instead of the built-in kubeconfig;
/// - `FAKE_VAGRANT_VERSION`: what `--version` prints after `Vagrant ` (default 2.4.9);
/// - `FAKE_VAGRANT_PLUGINS`: what `plugin list` prints (default: none installed).
///
/// The preflight's questions (`--version`, `plugin list`) change nothing and
/// are not recorded in `calls`.
const FAKE_VAGRANT: &str = r#"#!/bin/sh
D="$FAKE_VAGRANT_DIR"
case "$1" in
  --version) echo "Vagrant ${FAKE_VAGRANT_VERSION:-2.4.9}"; exit ;;
  plugin) echo "${FAKE_VAGRANT_PLUGINS:-No plugins installed.}"; exit ;;
esac
mkdir -p "$D/machines"
echo "$*" >> "$D/calls"
[ -z "$FAKE_VAGRANT_PIDS" ] || echo $$ >> "$FAKE_VAGRANT_PIDS"
env | grep -E '^(ORCH_|VAGRANT_DEFAULT_PROVIDER=)' | sort > "$D/env"
pwd > "$D/cwd"
machines() {
  echo master
  i=1
  while [ "$i" -le "${ORCH_AGENTS:-1}" ]; do
    if [ "$i" = 1 ]; then echo agent; else echo "agent-$i"; fi
    i=$((i + 1))
  done
}
event() { [ -z "$FAKE_VAGRANT_EVENTS" ] || echo "$*" >> "$FAKE_VAGRANT_EVENTS"; }
step() { # VERB MACHINE: maybe wait for another step, announce, maybe fail, take the delay
  for rule in $FAKE_VAGRANT_AFTER; do
    case "$rule" in
      "$1:$2>"*)
        other=${rule#*>}
        n=0
        until grep -qx "start ${other%:*} ${other#*:}" "$FAKE_VAGRANT_EVENTS" 2>/dev/null || [ "$n" -ge 600 ]; do
          sleep 0.1
          n=$((n + 1))
        done ;;
    esac
  done
  event start "$1" "$2"
  echo "==> $2: $1 (fake)"
  case " $FAKE_VAGRANT_FAIL " in
    *" $1:$2 "*) echo "The guest machine entered an invalid state while waiting for it to boot." >&2; exit 1 ;;
  esac
  case " $FAKE_VAGRANT_HANG " in
    *" $1:$2 "*) sleep 3600 ;;
  esac
  sleep "${FAKE_VAGRANT_DELAY:-0}"
  event end "$1" "$2"
}
state() { cat "$D/machines/$1" 2>/dev/null || echo not_created; }
case "$1" in
  status)
    case " $FAKE_VAGRANT_FAIL " in
      *" status "*)
        message="No usable default provider could be found for your system."
        if [ "$2" = --machine-readable ]; then echo "1700000000,,error-exit,Vagrant::Errors::NoDefaultProvider,$message"; else echo "$message" >&2; fi
        exit 1 ;;
    esac
    for m in $(machines); do
      s=$(state "$m")
      echo "1700000000,$m,metadata,provider,${VAGRANT_DEFAULT_PROVIDER:-virtualbox}"
      echo "1700000000,$m,provider-name,${VAGRANT_DEFAULT_PROVIDER:-virtualbox}"
      echo "1700000000,$m,state,$s"
      echo "1700000000,$m,state-human-short,$s"
    done
    echo "1700000000,,ui,info,Current machine states:"
    ;;
  box)
    case "$2" in
      list) if [ -f "$D/boxes" ]; then cat "$D/boxes"; else echo "There are no installed boxes! Use \`vagrant box add\` to add some."; fi ;;
      add) step add box; echo "$5 ($4, 202502.21.0)" >> "$D/boxes" ;;
    esac
    ;;
  up | reload)
    # `up|reload --no-provision MACHINE...`. The VM runs from the start of its
    # boot: a boot that fails or is stopped leaves it running, half booted.
    verb=$1
    shift 2
    for m in "$@"; do
      echo running > "$D/machines/$m"
      step "$verb" "$m"
    done
    ;;
  provision)
    [ "$(state "$2")" = running ] || { echo "VM must be running to provision" >&2; exit 1; }
    step provision "$2"
    [ -z "$FAKE_VAGRANT_ON_PROVISION" ] || sh -c "$FAKE_VAGRANT_ON_PROVISION"
    ;;
  halt)
    step halt "$2"
    [ "$(state "$2")" = not_created ] || echo poweroff > "$D/machines/$2"
    ;;
  destroy)
    shift 2
    for m in ${*:-$(machines)}; do
      step destroy "$m"
      rm -f "$D/machines/$m"
    done
    ;;
  ssh)
    [ "$(state "$2")" = running ] || { echo "VM must be running to ssh" >&2; exit 1; }
    if [ -n "$FAKE_VAGRANT_K3S_YAML" ]; then cat "$FAKE_VAGRANT_K3S_YAML"; exit; fi
    # A self-signed EC certificate and its key, standing for K3s's CA and admin credentials.
    cat <<'EOF'
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJoVENDQVN1Z0F3SUJBZ0lVZUNydTgySkpoZThVZmwrMTdCVVVtV2Iyc2RBd0NnWUlLb1pJemowRUF3SXcKR0RFV01CUUdBMVVFQXd3TmF6TnpMWE5sY25abGNpMWpZVEFlRncweU5qRXhNak14TkRVME1qaGFGdzB6TmpFeApNakF4TkRVME1qaGFNQmd4RmpBVUJnTlZCQU1NRFdzemN5MXpaWEoyWlhJdFkyRXdXVEFUQmdjcWhrak9QUUlCCkJnZ3Foa2pPUFFNQkJ3TkNBQVFlSTBUREQvMjJqU0pIeWp1ZkJ5TnNCbG9xK0xwTERva2RtZ0RrTlJzd0k3R3IKSE5wYTFQQytOYjRJclV0THB1ekd4M3hSaTZraXB6dFBIOEFESTN0T28xTXdVVEFkQmdOVkhRNEVGZ1FVSm5kMApKSURWZ2VLR3I1dEhxQ0tDbjlna1djMHdId1lEVlIwakJCZ3dGb0FVSm5kMEpJRFZnZUtHcjV0SHFDS0NuOWdrCldjMHdEd1lEVlIwVEFRSC9CQVV3QXdFQi96QUtCZ2dxaGtqT1BRUURBZ05JQURCRkFpRUF6b0dXaFhvWDJuSksKa3FRR3lONG0xeUppSmpSMjUyMkFHYmxaNlZWZkZyMENJRUcrUFJ6NXdFMExrclZoM1JCRkRVMC90cmlSSEMyQgpYMm1GcTJXRXdkVCsKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJoVENDQVN1Z0F3SUJBZ0lVZUNydTgySkpoZThVZmwrMTdCVVVtV2Iyc2RBd0NnWUlLb1pJemowRUF3SXcKR0RFV01CUUdBMVVFQXd3TmF6TnpMWE5sY25abGNpMWpZVEFlRncweU5qRXhNak14TkRVME1qaGFGdzB6TmpFeApNakF4TkRVME1qaGFNQmd4RmpBVUJnTlZCQU1NRFdzemN5MXpaWEoyWlhJdFkyRXdXVEFUQmdjcWhrak9QUUlCCkJnZ3Foa2pPUFFNQkJ3TkNBQVFlSTBUREQvMjJqU0pIeWp1ZkJ5TnNCbG9xK0xwTERva2RtZ0RrTlJzd0k3R3IKSE5wYTFQQytOYjRJclV0THB1ekd4M3hSaTZraXB6dFBIOEFESTN0T28xTXdVVEFkQmdOVkhRNEVGZ1FVSm5kMApKSURWZ2VLR3I1dEhxQ0tDbjlna1djMHdId1lEVlIwakJCZ3dGb0FVSm5kMEpJRFZnZUtHcjV0SHFDS0NuOWdrCldjMHdEd1lEVlIwVEFRSC9CQVV3QXdFQi96QUtCZ2dxaGtqT1BRUURBZ05JQURCRkFpRUF6b0dXaFhvWDJuSksKa3FRR3lONG0xeUppSmpSMjUyMkFHYmxaNlZWZkZyMENJRUcrUFJ6NXdFMExrclZoM1JCRkRVMC90cmlSSEMyQgpYMm1GcTJXRXdkVCsKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
    client-key-data: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JR0hBZ0VBTUJNR0J5cUdTTTQ5QWdFR0NDcUdTTTQ5QXdFSEJHMHdhd0lCQVFRZ0cwUE5vdXN1eFVwR3phUngKaE1SL2J6QUtyNENPRHhSNUNuSkhMODBQeklxaFJBTkNBQVFlSTBUREQvMjJqU0pIeWp1ZkJ5TnNCbG9xK0xwTApEb2tkbWdEa05Sc3dJN0dySE5wYTFQQytOYjRJclV0THB1ekd4M3hSaTZraXB6dFBIOEFESTN0TwotLS0tLUVORCBQUklWQVRFIEtFWS0tLS0tCg==
EOF
    ;;
  *) echo "fake vagrant: unknown command $*" >&2; exit 2 ;;
esac
"#;

/// The fake `VBoxManage`: `--version` prints `FAKE_VBOX_VERSION` (default 7.1.4r165100).
const FAKE_VBOXMANAGE: &str = "#!/bin/sh\necho \"${FAKE_VBOX_VERSION:-7.1.4r165100}\"\n";

/// VirtualBox's `networks.conf` in every sandbox: the tests' VMs live on loopback.
const NETWORKS_CONF: &str = "* 192.168.56.0/21 127.0.0.0/8\n";

/// A project directory, a home and a fake `PATH`, all inside one temporary directory.
pub struct Sandbox {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub project: PathBuf,
    pub home: PathBuf,
    pub vagrant_state: PathBuf,
    /// Stands for `/` where the preflight reads host files (`etc/vbox/networks.conf`, `proc/*`).
    pub host_root: PathBuf,
    pub bin: FakeBin,
    envs: Vec<(String, String)>,
}

impl Sandbox {
    /// `config` is the project's `orchestrator.toml`. The fake `vagrant` and a
    /// fake VirtualBox are on `PATH`; VirtualBox allows host-only addresses on
    /// loopback, and the host has no `/proc` files to judge.
    pub fn new(config: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let project = root.join("project");
        let home = root.join("home");
        let vagrant_state = root.join("vagrant");
        let host_root = root.join("host");
        for dir in [&project, &home, &vagrant_state, &host_root.join("etc/vbox")] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(
            project.join("orchestrator.toml"),
            with_local_k3s_release(config),
        )
        .unwrap();
        std::fs::write(host_root.join("etc/vbox/networks.conf"), NETWORKS_CONF).unwrap();
        let bin = FakeBin::new(&root);
        bin.write("vagrant", FAKE_VAGRANT);
        bin.write("VBoxManage", FAKE_VBOXMANAGE);
        Sandbox {
            _tmp: tmp,
            root,
            project,
            home,
            vagrant_state,
            host_root,
            bin,
            envs: Vec::new(),
        }
    }

    /// Sets an environment variable for every later run.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.envs.retain(|(k, _)| k != key);
        self.envs.push((key.into(), value.into()));
        self
    }

    /// The user's kubeconfig, as `KUBECONFIG` names it.
    pub fn user_kubeconfig(&self) -> PathBuf {
        self.home.join(".kube/config")
    }

    pub fn state_file(&self, name: &str) -> PathBuf {
        self.project.join(".orchestrator").join(name)
    }

    /// The binary with `args`, in the project directory, ready to run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_orchestrator"));
        command
            .args(args)
            .current_dir(&self.project)
            .env_clear()
            .env("PATH", self.bin.path())
            .env("HOME", &self.home)
            .env("KUBECONFIG", self.user_kubeconfig())
            .env("FAKE_VAGRANT_DIR", &self.vagrant_state)
            .env("ORCHESTRATOR_HOST_ROOT", &self.host_root);
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.command(args).output().unwrap())
    }

    /// Every vagrant call so far, one string of arguments each.
    pub fn vagrant_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.vagrant_state.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The vagrant calls so far, sorted: for steps that run concurrently.
    pub fn sorted_vagrant_calls(&self) -> Vec<String> {
        let mut calls = self.vagrant_calls();
        calls.sort();
        calls
    }

    /// Forgets the calls recorded so far.
    pub fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.vagrant_state.join("calls"));
    }

    /// A box as `vagrant box list` shows it, e.g. `NAME (virtualbox, 1.0)`.
    pub fn add_box(&self, line: &str) {
        std::fs::write(self.vagrant_state.join("boxes"), format!("{line}\n")).unwrap();
    }

    /// Sets a machine's state as `vagrant status` will report it.
    pub fn set_machine(&self, name: &str, state: &str) {
        let dir = self.vagrant_state.join("machines");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), format!("{state}\n")).unwrap();
    }

    pub fn machine(&self, name: &str) -> String {
        std::fs::read_to_string(self.vagrant_state.join("machines").join(name))
            .map_or_else(|_| "not_created".into(), |s| s.trim().to_string())
    }

    pub fn read(&self, path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    }
}

/// A finished run of the binary.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    /// Panics with the output unless standard output contains `text`.
    pub fn stdout_has(&self, text: &str) -> &Self {
        let out = self.stdout();
        assert!(out.contains(text), "{text:?} not in stdout:\n{out}");
        self
    }

    /// Panics with the output unless standard error contains `text`.
    pub fn stderr_has(&self, text: &str) -> &Self {
        let err = self.stderr();
        assert!(err.contains(text), "{text:?} not in stderr:\n{err}");
        self
    }

    /// Panics with both outputs unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// `config` with the K3s release coming from this process's loopback release
/// server (one for every sandbox), never from the internet.
fn with_local_k3s_release(config: &str) -> String {
    static BASE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let base = BASE.get_or_init(|| super::release::Server::start().1);
    let keys = format!(
        "k3s_release_url = \"{base}/releases\"\nk3s_installer_url = \"{base}/install.sh\"\n"
    );
    match config.find("[cluster]\n") {
        Some(at) => {
            let (before, after) = config.split_at(at + "[cluster]\n".len());
            format!("{before}{keys}{after}")
        }
        None => format!("{config}\n[cluster]\n{keys}"),
    }
}
