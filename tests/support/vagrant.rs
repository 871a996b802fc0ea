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
/// - `FAKE_VAGRANT_DELAY`: seconds each up, provision, halt and box add takes;
/// - `FAKE_VAGRANT_K3S_YAML`: a file `ssh master -c ...` prints instead of the built-in kubeconfig.
const FAKE_VAGRANT: &str = r#"#!/bin/sh
D="$FAKE_VAGRANT_DIR"
mkdir -p "$D/machines"
echo "$*" >> "$D/calls"
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
step() { # VERB MACHINE: announce, maybe fail, take the delay
  echo "==> $2: $1 (fake)"
  case " $FAKE_VAGRANT_FAIL " in
    *" $1:$2 "*) echo "The guest machine entered an invalid state while waiting for it to boot." >&2; exit 1 ;;
  esac
  sleep "${FAKE_VAGRANT_DELAY:-0}"
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
  up)
    step up "$3"
    echo running > "$D/machines/$3"
    ;;
  provision)
    [ "$(state "$2")" = running ] || { echo "VM must be running to provision" >&2; exit 1; }
    step provision "$2"
    ;;
  halt)
    step halt "$2"
    [ "$(state "$2")" = not_created ] || echo poweroff > "$D/machines/$2"
    ;;
  destroy)
    for m in $(machines); do step destroy "$m"; done
    rm -f "$D"/machines/*
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

/// A project directory, a home and a fake `PATH`, all inside one temporary directory.
pub struct Sandbox {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub project: PathBuf,
    pub home: PathBuf,
    pub vagrant_state: PathBuf,
    pub bin: FakeBin,
    envs: Vec<(String, String)>,
}

impl Sandbox {
    /// `config` is the project's `orchestrator.toml`. The fake `vagrant` and a
    /// fake VirtualBox are on `PATH`.
    pub fn new(config: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let project = root.join("project");
        let home = root.join("home");
        let vagrant_state = root.join("vagrant");
        for dir in [&project, &home, &vagrant_state] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(project.join("orchestrator.toml"), config).unwrap();
        let bin = FakeBin::new(&root);
        bin.write("vagrant", FAKE_VAGRANT);
        bin.recorder("VBoxManage", &root.join("vboxmanage-calls"));
        Sandbox {
            _tmp: tmp,
            root,
            project,
            home,
            vagrant_state,
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
            .env("FAKE_VAGRANT_DIR", &self.vagrant_state);
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
