//! The cluster commands as a user runs them, against a fake `vagrant` (see
//! `support/vagrant.rs`). The master's address is 127.0.0.2, where no API
//! server listens, so `create` and `start` get as far as the node wait and
//! fail there: the whole path up to it is checked here, the rest against
//! kube-sim in `lifecycle_kube_sim.rs`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use support::vagrant::Sandbox;
use support::{FakeBin, mode, survivors};

const CONFIG: &str = "[cluster]\nmaster_ip = \"127.0.0.2\"\nready_timeout_secs = 1\n\n[deploy]\nnamespace = \"shop\"\n";

/// A user kubeconfig with a context of its own that must survive.
const USER_KUBECONFIG: &str = "\
apiVersion: v1
kind: Config
clusters:
- name: work
  cluster: {server: 'https://work.example:443'}
users:
- name: work-admin
  user: {token: work-token}
contexts:
- name: work
  context: {cluster: work, user: work-admin}
current-context: work
";

fn user_kubeconfig_with_other_context(sandbox: &Sandbox) {
    std::fs::create_dir_all(sandbox.user_kubeconfig().parent().unwrap()).unwrap();
    std::fs::write(sandbox.user_kubeconfig(), USER_KUBECONFIG).unwrap();
}

fn yaml(text: &str) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(text).unwrap()
}

/// CONFIG with every vagrant step limited to 1 s.
fn config_with_step_timeout() -> String {
    CONFIG.replace(
        "ready_timeout_secs = 1\n",
        "ready_timeout_secs = 1\nstep_timeout_secs = 1\n",
    )
}

/// Clears the recorded vagrant calls and runs `command` again; with no API
/// server it gets as far as the node wait (exit 4). Returns its vagrant calls.
fn resume(sandbox: &Sandbox, command: &str) -> Vec<String> {
    sandbox.clear_calls();
    sandbox.run(&[command]).expect_code(4);
    sandbox.vagrant_calls()
}

/// The calls that contain `text` (a machine's name), in order.
fn calls_with<'a>(calls: &'a [String], text: &str) -> Vec<&'a String> {
    calls.iter().filter(|c| c.contains(text)).collect()
}

fn context_names(doc: &serde_yaml_ng::Value) -> Vec<String> {
    doc["contexts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn create_without_vagrant_or_the_provider_changes_nothing() {
    for (program, message) in [
        (
            "VBoxManage",
            "VirtualBox         `VBoxManage` not found on PATH: it is the VMs' provider",
        ),
        (
            "vagrant",
            "vagrant            `vagrant` not found on PATH: it runs the cluster's VMs",
        ),
    ] {
        let sandbox = Sandbox::new(CONFIG);
        std::fs::remove_file(sandbox.bin.path().join(program)).unwrap();
        let run = sandbox.run(&["create"]);
        run.expect_code(3).stderr_has(message);
        assert!(sandbox.vagrant_calls().is_empty());
        assert!(!sandbox.project.join(".orchestrator").exists());
    }
}

#[test]
fn a_vagrant_error_is_shown_in_its_own_words_and_nothing_runs() {
    let mut sandbox = Sandbox::new(CONFIG);
    sandbox.env("FAKE_VAGRANT_FAIL", "status");
    let run = sandbox.run(&["create"]);
    run.expect_code(1);
    run.stderr_has("vagrant status: `vagrant status` exited with status 1")
        .stderr_has("| No usable default provider could be found for your system.");
    assert_eq!(
        sandbox.vagrant_calls(),
        ["status --machine-readable", "status"]
    );
    assert!(!sandbox.state_file("kubeconfig").exists());
}

#[test]
fn create_boots_provisions_and_writes_the_kubeconfigs() {
    let sandbox = Sandbox::new(CONFIG);
    user_kubeconfig_with_other_context(&sandbox);
    let run = sandbox.run(&["create"]);
    // No API server at 127.0.0.2: everything up to the node wait ran.
    run.expect_code(4);
    run.stderr_has("did not answer within 1s");

    let calls = sandbox.vagrant_calls();
    assert_eq!(
        calls[..3],
        [
            "status --machine-readable",
            "box list",
            "box add --provider virtualbox bento/ubuntu-24.04"
        ]
    );
    // The master boots alone; then it is provisioned while the agent boots and joins.
    assert_eq!(calls[3], "up --no-provision master");
    let mut beside = calls[4..7].to_vec();
    beside.sort();
    assert_eq!(
        beside,
        [
            "provision agent",
            "provision master",
            "up --no-provision agent"
        ]
    );
    let at = |call: &str| calls.iter().position(|c| c == call).unwrap();
    assert!(at("up --no-provision agent") < at("provision agent"));
    assert_eq!(
        calls[7..],
        ["ssh master -c sudo cat /etc/rancher/k3s/k3s.yaml"]
    );

    let env = sandbox.read(&sandbox.vagrant_state.join("env"));
    let token = sandbox.state_file("token");
    for line in [
        "ORCH_AGENTS=1".to_string(),
        "ORCH_MASTER_IP=127.0.0.2".into(),
        "ORCH_CPUS=2".into(),
        "ORCH_MEMORY_MB=2048".into(),
        "ORCH_BOX=bento/ubuntu-24.04".into(),
        "ORCH_K3S_VERSION=v1.36.4+k3s1".into(),
        format!("ORCH_TOKEN_FILE={}", token.display()),
        "VAGRANT_DEFAULT_PROVIDER=virtualbox".into(),
    ] {
        assert!(env.lines().any(|l| l == line), "{line} not in\n{env}");
    }
    assert_eq!(
        sandbox.read(&sandbox.vagrant_state.join("cwd")).trim(),
        sandbox.project.to_str().unwrap()
    );

    assert_eq!(mode(&token), 0o600);
    assert_eq!(sandbox.read(&token).trim().len(), 64);

    let ours_path = sandbox.state_file("kubeconfig");
    assert_eq!(mode(&ours_path), 0o600);
    let ours = yaml(&sandbox.read(&ours_path));
    assert_eq!(
        ours["clusters"][0]["cluster"]["server"],
        "https://127.0.0.2:6443"
    );
    assert!(ours["clusters"][0]["cluster"]["certificate-authority-data"].is_string());
    assert_eq!(ours["contexts"][0]["name"], "orchestrator");
    assert_eq!(ours["contexts"][0]["context"]["namespace"], "shop");

    let user = yaml(&sandbox.read(&sandbox.user_kubeconfig()));
    assert_eq!(context_names(&user), ["work", "orchestrator"]);
    assert_eq!(user["current-context"], "work");
    assert_eq!(user["users"][0]["user"]["token"], "work-token");

    for line in [
        "boot master: ok",
        "boot agent: ok",
        "install K3s: ok",
        "join agent: ok",
        "kubeconfig: ok: context orchestrator merged into",
        "nodes Ready: FAILED",
    ] {
        run.stderr_has(line);
    }
    assert!(!run.stdout().contains("client-key-data") && !run.stderr().contains("client-key-data"));
    let logs = std::fs::read_dir(sandbox.state_file("logs"))
        .unwrap()
        .count();
    assert!(logs >= 4, "one log per step");
    assert!(
        !sandbox
            .read(&sandbox.state_file("logs/kubeconfig.log"))
            .contains("client-key-data")
    );
}

#[test]
fn create_sets_our_context_current_only_when_there_was_none() {
    let sandbox = Sandbox::new(CONFIG);
    sandbox.run(&["create"]).expect_code(4);
    let user = yaml(&sandbox.read(&sandbox.user_kubeconfig()));
    assert_eq!(user["current-context"], "orchestrator");
    assert_eq!(mode(&sandbox.user_kubeconfig()), 0o600);
}

#[test]
fn a_failed_agent_boot_is_reported_and_the_next_create_resumes() {
    let mut sandbox = Sandbox::new(CONFIG);
    sandbox.env("FAKE_VAGRANT_FAIL", "up:agent");
    let run = sandbox.run(&["create"]);
    run.expect_code(1);
    run.stderr_has("boot agent: `vagrant up --no-provision agent` exited with status 1");
    run.stderr_has("| The guest machine entered an invalid state");
    run.stderr_has("full log: ").stderr_has("boot-agent.log");
    run.stderr_has("boot agent: FAILED");
    assert!(
        !sandbox
            .vagrant_calls()
            .iter()
            .any(|c| c.starts_with("provision agent"))
    );
    assert!(!sandbox.state_file("kubeconfig").exists());
    assert_eq!(sandbox.machine("master"), "running");
    // The failed boot left the agent running without its network.
    assert_eq!(sandbox.machine("agent"), "running");
    let token = sandbox.read(&sandbox.state_file("token"));

    sandbox.env("FAKE_VAGRANT_FAIL", "");
    let calls = resume(&sandbox, "create");
    // Its first boot never configured its private network: created again.
    assert_eq!(
        calls_with(&calls, " agent"),
        [
            "destroy -f agent",
            "up --no-provision agent",
            "provision agent"
        ],
        "{calls:?}"
    );
    assert!(
        !calls.contains(&"up --no-provision master".to_string()),
        "{calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.starts_with("box add")),
        "the box came with the first run: {calls:?}"
    );
    assert!(calls.contains(&"provision master".to_string()), "{calls:?}");
    assert!(sandbox.state_file("kubeconfig").exists());
    assert_eq!(
        sandbox.read(&sandbox.state_file("token")),
        token,
        "the join token is kept"
    );
}

#[test]
fn an_unwritable_user_kubeconfig_is_reported_and_create_resumes_once_fixed() {
    let mut sandbox = Sandbox::new(CONFIG);
    // A file where the directory should be: not even root can write there.
    let blocked = sandbox.home.join("blocked");
    std::fs::write(&blocked, "").unwrap();
    let target = blocked.join("config");
    sandbox.env("KUBECONFIG", target.to_str().unwrap());
    let run = sandbox.run(&["create"]);
    run.expect_code(1);
    run.stderr_has(&target.display().to_string());
    run.stderr_has("Not a directory");
    run.stderr_has("run `orchestrator create` again");
    run.stderr_has("kubeconfig: FAILED");

    std::fs::remove_file(&blocked).unwrap();
    assert_eq!(
        resume(&sandbox, "create"),
        ["status --machine-readable"],
        "nothing to redo but the merge"
    );
    assert_eq!(
        context_names(&yaml(&sandbox.read(&target))),
        ["orchestrator"]
    );
}

#[test]
fn a_user_kubeconfig_that_is_not_yaml_is_left_alone() {
    let sandbox = Sandbox::new(CONFIG);
    std::fs::create_dir_all(sandbox.user_kubeconfig().parent().unwrap()).unwrap();
    let garbage = "clusters: [unclosed\n";
    std::fs::write(sandbox.user_kubeconfig(), garbage).unwrap();
    let run = sandbox.run(&["create"]);
    run.expect_code(1);
    run.stderr_has("cannot merge the cluster's context into");
    assert_eq!(sandbox.read(&sandbox.user_kubeconfig()), garbage);
    assert_eq!(
        std::fs::read_dir(sandbox.user_kubeconfig().parent().unwrap())
            .unwrap()
            .count(),
        1
    );
}

/// How a signal reaches the CLI.
enum Signal {
    /// SIGINT to the CLI's whole process group, as a terminal's Ctrl-C.
    CtrlC,
    /// SIGTERM to the CLI alone, as CI's `timeout` or systemd sends it.
    Term,
}

/// Makes every vagrant step take 30 s, record its pid and its start in the
/// file of events (`events` reads it), with the box already added so that
/// the first slow step is the master's boot. Returns the file of pids.
fn slow_vagrant(sandbox: &mut Sandbox) -> PathBuf {
    sandbox.env("FAKE_VAGRANT_DELAY", "30");
    let pids = sandbox.root.join("pids");
    sandbox.env("FAKE_VAGRANT_PIDS", pids.to_str().unwrap());
    let events = sandbox.root.join("events");
    sandbox.env("FAKE_VAGRANT_EVENTS", events.to_str().unwrap());
    sandbox.add_box("bento/ubuntu-24.04 (virtualbox, 202502.21.0)");
    pids
}

/// After a stopped run: no vagrant of `pids` outlived `what`, and no
/// kubeconfig was written.
fn assert_nothing_left_running(sandbox: &Sandbox, pids: &Path, what: &str) {
    assert_eq!(
        survivors(pids),
        Vec::<String>::new(),
        "vagrant outlived {what}"
    );
    assert!(!sandbox.state_file("kubeconfig").exists());
}

/// Starts `create` with every vagrant step taking 30 s, signals the CLI once
/// a VM boots, and checks it exits 130, says how to resume, and leaves no
/// vagrant running.
fn interrupt_create(sandbox: &mut Sandbox, signal: Signal) {
    use std::os::unix::process::CommandExt;
    let pids = slow_vagrant(sandbox);
    let child = sandbox
        .command(&["create"])
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A boot has started once its vagrant recorded its pid and announced its step.
    let log = sandbox.root.join("events");
    let booting = || events(&log).iter().any(|e| e.starts_with("start up "));
    let started = std::time::Instant::now();
    while !booting() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(booting(), "no boot started: {:?}", sandbox.vagrant_calls());
    let (name, target) = match signal {
        Signal::CtrlC => ("-INT", format!("-{}", child.id())),
        Signal::Term => ("-TERM", child.id().to_string()),
    };
    let killed = std::process::Command::new("kill")
        .args([name, "--", &target])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("run the same command again to resume"),
        "{stderr}"
    );
    assert_nothing_left_running(sandbox, &pids, "the CLI");
    sandbox.env("FAKE_VAGRANT_DELAY", "0");
}

#[test]
fn ctrl_c_during_create_exits_130_and_the_next_create_resumes() {
    let mut sandbox = Sandbox::new(CONFIG);
    interrupt_create(&mut sandbox, Signal::CtrlC);
    let calls = resume(&sandbox, "create");
    assert!(sandbox.state_file("kubeconfig").exists());
    assert_eq!(sandbox.machine("agent"), "running");
    assert_eq!(
        calls_with(&calls, "master")[..2],
        ["destroy -f master", "up --no-provision master"],
        "the master's interrupted first boot is done again: {calls:?}"
    );
}

#[test]
fn a_later_boot_left_half_done_is_rebooted_not_recreated() {
    let mut sandbox = Sandbox::new(&config_with_step_timeout());
    sandbox.run(&["create"]).expect_code(4);
    sandbox.set_machine("master", "poweroff");
    sandbox.env("FAKE_VAGRANT_DELAY", "30");
    sandbox
        .run(&["start"])
        .expect_code(1)
        .stderr_has("boot master took longer than cluster.step_timeout_secs");
    assert_eq!(sandbox.machine("master"), "running");

    sandbox.env("FAKE_VAGRANT_DELAY", "0");
    let calls = resume(&sandbox, "start");
    assert!(
        calls.contains(&"reload --no-provision master".to_string())
            && !calls.iter().any(|c| c.starts_with("destroy")),
        "{calls:?}"
    );
}

#[test]
fn sigterm_stops_every_vagrant_and_exits_like_ctrl_c() {
    let mut sandbox = Sandbox::new("[cluster]\nagents = 2\nmaster_ip = \"127.0.0.2\"\n");
    interrupt_create(&mut sandbox, Signal::Term);
}

#[test]
fn a_step_over_its_time_limit_is_stopped_named_and_resumed() {
    let mut sandbox = Sandbox::new(&config_with_step_timeout());
    let pids = slow_vagrant(&mut sandbox);
    let run = sandbox.run(&["create"]);
    run.expect_code(1)
        .stderr_has("boot master took longer than cluster.step_timeout_secs")
        .stderr_has("run the same command again to resume")
        .stderr_has("`vagrant up --no-provision master` did not finish within 1s and was stopped")
        .stderr_has("| ==> master: up (fake)")
        .stderr_has("boot-master.log");
    assert_nothing_left_running(&sandbox, &pids, "its step");

    sandbox.env("FAKE_VAGRANT_DELAY", "0");
    let calls = resume(&sandbox, "create");
    assert_eq!(
        calls_with(&calls, "master"),
        [
            "destroy -f master",
            "up --no-provision master",
            "provision master",
            "ssh master -c sudo cat /etc/rancher/k3s/k3s.yaml"
        ],
        "{calls:?}"
    );
}

/// The fake vagrant's step events, `start|end VERB MACHINE`, in order.
fn events(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn position(events: &[String], event: &str) -> usize {
    events
        .iter()
        .position(|e| e == event)
        .unwrap_or_else(|| panic!("no {event:?} in {events:#?}"))
}

#[test]
fn virtualbox_boots_the_master_alone_then_the_agents_beside_its_provisioning() {
    let mut sandbox =
        Sandbox::new("[cluster]\nagents = 2\nmaster_ip = \"127.0.0.2\"\nready_timeout_secs = 1\n");
    sandbox.env("FAKE_VAGRANT_DELAY", "1");
    let log = sandbox.root.join("events");
    sandbox.env("FAKE_VAGRANT_EVENTS", log.to_str().unwrap());
    sandbox.run(&["create"]).expect_code(4);
    let events = events(&log);
    let master_booted = position(&events, "end up master");
    for agent in ["agent", "agent-2"] {
        assert!(
            master_booted < position(&events, &format!("start up {agent}")),
            "{agent} booted beside the master: {events:#?}"
        );
        assert!(
            position(&events, "start provision master")
                < position(&events, &format!("end up {agent}")),
            "{agent} waited for the master's provisioning: {events:#?}"
        );
    }
    assert_eq!(
        sandbox
            .vagrant_calls()
            .iter()
            .filter(|c| c.starts_with("up "))
            .count(),
        3,
        "one vagrant process per VM"
    );
}

/// A libvirt host for the preflight: `virsh` and the vagrant-libvirt plugin.
fn with_libvirt(sandbox: &mut Sandbox) {
    sandbox.bin.write("virsh", "#!/bin/sh\necho 10.0.0\n");
    sandbox.env("FAKE_VAGRANT_PLUGINS", "vagrant-libvirt (0.12.2, global)");
}

#[test]
fn libvirt_boots_every_vm_in_one_vagrant_up() {
    let mut sandbox = Sandbox::new(
        "[cluster]\nprovider = \"libvirt\"\nagents = 2\nmaster_ip = \"127.0.0.2\"\nready_timeout_secs = 1\n",
    );
    with_libvirt(&mut sandbox);
    sandbox.run(&["create"]).expect_code(4);
    let calls = sandbox.vagrant_calls();
    let ups: Vec<&String> = calls.iter().filter(|c| c.starts_with("up ")).collect();
    assert_eq!(ups, ["up --no-provision master agent agent-2"], "{calls:?}");
    let provisions = calls.iter().filter(|c| c.starts_with("provision ")).count();
    assert_eq!(provisions, 3, "{calls:?}");
}

/// The agents' joins wait for the master's API: when the master's
/// provisioning fails, `create` ends with the master's error without waiting
/// for them, their vagrant stopped, and the next `create` finishes the job.
#[test]
fn a_failed_master_ends_create_at_once_and_stops_the_agents() {
    for provider in ["virtualbox", "libvirt"] {
        // Without the fix the agent's join would end only at the step's time limit.
        let mut sandbox = Sandbox::new(&format!(
            "[cluster]\nprovider = \"{provider}\"\nmaster_ip = \"127.0.0.2\"\nready_timeout_secs = 1\nstep_timeout_secs = 5\n"
        ));
        if provider == "libvirt" {
            with_libvirt(&mut sandbox);
        }
        let (log, pids) = (sandbox.root.join("events"), sandbox.root.join("pids"));
        sandbox
            .env("FAKE_VAGRANT_EVENTS", log.to_str().unwrap())
            .env("FAKE_VAGRANT_PIDS", pids.to_str().unwrap())
            // The master fails while the agent waits for its API, which never answers.
            .env("FAKE_VAGRANT_AFTER", "provision:master>provision:agent")
            .env("FAKE_VAGRANT_FAIL", "provision:master")
            .env("FAKE_VAGRANT_HANG", "provision:agent");
        let run = sandbox.run(&["create"]);
        run.expect_code(1)
            .stderr_has("install K3s: `vagrant provision master` exited with status 1")
            .stderr_has("| The guest machine entered an invalid state")
            .stderr_has("the master failed: stopping the agents' work")
            .stderr_has("join agent: FAILED: stopped before it finished");
        assert!(!run.stderr().contains("took longer"), "{}", run.stderr());
        let events = events(&log);
        assert!(
            events.contains(&"start provision agent".to_string())
                && !events.contains(&"end provision agent".to_string()),
            "{provider}: {events:#?}"
        );
        assert_eq!(survivors(&pids), Vec::<String>::new(), "{provider}");
        assert!(!sandbox.state_file("kubeconfig").exists());

        for key in [
            "FAKE_VAGRANT_AFTER",
            "FAKE_VAGRANT_FAIL",
            "FAKE_VAGRANT_HANG",
        ] {
            sandbox.env(key, "");
        }
        let calls = resume(&sandbox, "create");
        for call in ["provision master", "provision agent"] {
            assert!(calls.contains(&call.to_string()), "{provider}: {calls:?}");
        }
        assert!(sandbox.state_file("kubeconfig").exists());
    }
}

#[test]
fn start_needs_a_created_cluster() {
    let sandbox = Sandbox::new(CONFIG);
    let run = sandbox.run(&["start"]);
    run.expect_code(1);
    run.stderr_has("VM master has not been created");
    run.stderr_has("orchestrator create");
    assert_eq!(sandbox.vagrant_calls(), ["status --machine-readable"]);
}

#[test]
fn start_boots_halted_machines_without_provisioning() {
    let sandbox = Sandbox::new(CONFIG);
    sandbox.run(&["create"]).expect_code(4);
    sandbox.set_machine("master", "poweroff");
    sandbox.set_machine("agent", "saved");
    sandbox.clear_calls();
    let run = sandbox.run(&["start"]);
    run.expect_code(4);
    assert_eq!(
        sandbox.sorted_vagrant_calls(),
        [
            "status --machine-readable",
            "up --no-provision agent",
            "up --no-provision master"
        ]
    );
    run.stderr_has("nodes Ready: FAILED");
}

#[test]
fn stop_halts_the_agents_then_the_master() {
    let mut sandbox = Sandbox::new("[cluster]\nagents = 2\n");
    sandbox.env("FAKE_VAGRANT_DELAY", "0.3");
    for machine in ["master", "agent", "agent-2"] {
        sandbox.set_machine(machine, "running");
    }
    let run = sandbox.run(&["stop"]);
    run.expect_code(0);
    assert!(
        run.stdout().ends_with("cluster stopped\n"),
        "{}",
        run.stdout()
    );
    let calls = sandbox.vagrant_calls();
    assert_eq!(calls[0], "status --machine-readable");
    let mut agents = calls[1..3].to_vec();
    agents.sort();
    assert_eq!(agents, ["halt agent", "halt agent-2"]);
    assert_eq!(calls[3..], ["halt master"]);
    for machine in ["master", "agent", "agent-2"] {
        assert_eq!(sandbox.machine(machine), "poweroff");
    }

    sandbox.clear_calls();
    let again = sandbox.run(&["stop"]);
    again.expect_code(0);
    again.stderr_has("no VM is running");
    assert_eq!(sandbox.vagrant_calls(), ["status --machine-readable"]);
}

#[test]
fn destroy_without_a_terminal_needs_yes() {
    let sandbox = Sandbox::new(CONFIG);
    let run = sandbox.run(&["destroy"]);
    run.expect_code(2);
    run.stderr_has("pass --yes");
    assert!(sandbox.vagrant_calls().is_empty());
}

#[test]
fn destroy_removes_the_vms_our_context_and_the_local_state_only() {
    let sandbox = Sandbox::new(CONFIG);
    user_kubeconfig_with_other_context(&sandbox);
    sandbox.run(&["create"]).expect_code(4);
    std::fs::write(
        sandbox.state_file("credentials.env"),
        "INVENTORY_DB_PASSWORD=x\n",
    )
    .unwrap();
    let run = sandbox.run(&["destroy", "--yes"]);
    run.expect_code(0);
    run.stdout_has("removed the orchestrator context from")
        .stdout_has("credentials.env (the stack's credentials")
        .stdout_has(
            "cluster destroyed
",
        );
    assert!(sandbox.vagrant_calls().contains(&"destroy -f".to_string()));
    assert_eq!(sandbox.machine("master"), "not_created");
    assert!(!sandbox.state_file("token").exists());
    assert!(!sandbox.state_file("kubeconfig").exists());
    assert!(sandbox.state_file("credentials.env").exists());
    assert_eq!(
        yaml(&sandbox.read(&sandbox.user_kubeconfig())),
        yaml(USER_KUBECONFIG)
    );
}

#[test]
fn status_json_shows_the_machines_and_why_there_are_no_nodes() {
    let sandbox = Sandbox::new("[cluster]\nagents = 2\n");
    sandbox.set_machine("master", "running");
    sandbox.set_machine("agent", "poweroff");
    let run = sandbox.run(&["status", "--json"]);
    run.expect_code(0);
    let json: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(
        json["machines"],
        serde_json::json!([
            {"name": "master", "state": "running"},
            {"name": "agent", "state": "poweroff"},
            {"name": "agent-2", "state": "not_created"},
        ])
    );
    assert_eq!(json["nodes"], serde_json::json!([]));
    assert!(
        json["api_error"]
            .as_str()
            .unwrap()
            .contains("orchestrator create"),
        "{json}"
    );

    let text = sandbox.run(&["status"]);
    text.expect_code(0);
    text.stdout_has("  agent      poweroff");
}

#[test]
fn fake_bin_is_the_whole_path() {
    let dir = tempfile::tempdir().unwrap();
    let bin = FakeBin::new(dir.path());
    assert!(bin.path().join("sh").exists());
    assert!(!bin.path().join("vagrant").exists());
}
