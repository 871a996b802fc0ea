//! The preflight as a user meets it: `doctor` (and `--json`), and `create`,
//! `start` and `deploy` refusing to start on a host that cannot work — before
//! anything changes. Fake `vagrant`, `VBoxManage`, `virsh` and `docker` print
//! chosen versions and errors; the host files (`etc/vbox/networks.conf`,
//! `proc/*`) live in the sandbox's `host_root`.

mod support;

use support::docker::{FakeDocker, PREFLIGHT_CALLS};
use support::vagrant::{Run, Sandbox};

const CONFIG: &str = "[cluster]\nmaster_ip = \"127.0.0.2\"\nready_timeout_secs = 1\n\n[registry]\nnamespace = \"student\"\n";

/// `CONFIG` with one more `[cluster]` setting.
fn with_cluster(setting: &str) -> String {
    CONFIG.replace("[cluster]\n", &format!("[cluster]\n{setting}\n"))
}

fn logged_in(sandbox: &Sandbox) {
    let dir = sandbox.home.join(".docker");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        r#"{"auths": {"https://index.docker.io/v1/": {"auth": "c3R1ZGVudDpzZWNyZXQ="}}}"#,
    )
    .unwrap();
}

fn host_file(sandbox: &Sandbox, path: &str, text: &str) {
    let file = sandbox.host_root.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, text).unwrap();
}

fn meminfo(total_mib: u64, available_mib: u64) -> String {
    format!(
        "MemTotal:       {} kB\nMemFree:          204800 kB\nMemAvailable:   {} kB\n",
        total_mib * 1024,
        available_mib * 1024
    )
}

/// Every tool present and answering, the host roomy: doctor is all ok.
fn healthy_host() -> Sandbox {
    let sandbox = Sandbox::new(CONFIG);
    FakeDocker::install(&sandbox.bin, &sandbox.root);
    logged_in(&sandbox);
    sandbox
        .bin
        .recorder("kubectl", &sandbox.root.join("kubectl-calls"));
    host_file(&sandbox, "proc/meminfo", &meminfo(16000, 12000));
    host_file(
        &sandbox,
        "proc/modules",
        "vboxdrv 696320 2 vboxnetadp,vboxnetflt, Live 0x0000000000000000 (OE)\n",
    );
    sandbox
}

/// Doctor's report, word for word as a snapshot (a change of wording is a
/// diff to review: `cargo insta review`), with the sandbox's temporary
/// directory as `[SANDBOX]` so that it reads the same on every run.
fn report(sandbox: &Sandbox, run: &Run) -> String {
    run.stdout()
        .replace(&sandbox.root.display().to_string(), "[SANDBOX]")
}

/// Asserts that nothing was changed: no vagrant step, no `.orchestrator/`.
fn nothing_touched(sandbox: &Sandbox) {
    assert!(
        sandbox.vagrant_calls().is_empty(),
        "{:?}",
        sandbox.vagrant_calls()
    );
    assert!(!sandbox.project.join(".orchestrator").exists());
}

#[test]
fn doctor_on_a_ready_host_says_ok_for_every_check() {
    let sandbox = healthy_host();
    let run = sandbox.run(&["doctor"]);
    run.expect_code(0);
    insta::assert_snapshot!(report(&sandbox, &run));
    assert!(
        !run.stdout().contains("c3R1ZGVudDpzZWNyZXQ="),
        "no credential in the output"
    );
}

#[test]
fn doctor_json_has_every_finding_with_its_level_and_fix() {
    let mut sandbox = healthy_host();
    sandbox.env("FAKE_DOCKER_DAEMON", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?");
    let run = sandbox.run(&["doctor", "--json"]);
    run.expect_code(5);
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(report["host"]["arch"], "amd64");
    assert_eq!(report["host"]["wsl"], false);
    assert_eq!(
        report["summary"],
        serde_json::json!({"ok": 11, "warn": 0, "fail": 1})
    );
    let findings = report["findings"].as_array().unwrap();
    let daemon = findings
        .iter()
        .find(|f| f["check"] == "docker daemon")
        .unwrap();
    assert_eq!(daemon["level"], "fail");
    assert!(
        daemon["fix"]
            .as_str()
            .unwrap()
            .contains("sudo systemctl start docker")
    );
    let vagrant = findings.iter().find(|f| f["check"] == "vagrant").unwrap();
    assert_eq!(vagrant["level"], "ok");
    assert!(vagrant.get("fix").is_none(), "{vagrant}");
    run.stderr_has("1 check(s) failed: docker daemon");
}

#[test]
fn doctor_names_missing_tools_with_how_to_install_them() {
    let sandbox = Sandbox::new("[cluster]\nprovider = \"libvirt\"\n");
    let run = sandbox.run(&["doctor"]);
    run.expect_code(3)
        .stderr_has("failed: libvirt, vagrant-libvirt, docker");
    insta::assert_snapshot!(report(&sandbox, &run));
    assert!(!run.stdout().contains("VirtualBox"), "{}", run.stdout());
    assert!(
        !run.stdout().contains("host-only network"),
        "VirtualBox's ranges do not apply to libvirt"
    );
}

#[test]
fn virtualbox_newer_than_vagrant_knows_stops_create_and_start_before_anything() {
    for (command, vagrant, virtualbox, needed) in [
        ("create", "2.4.1", "7.1.4r165100", "2.4.2"),
        ("start", "2.4.8", "7.2.0r170228", "2.4.9"),
    ] {
        let mut sandbox = Sandbox::new(CONFIG);
        sandbox
            .env("FAKE_VAGRANT_VERSION", vagrant)
            .env("FAKE_VBOX_VERSION", virtualbox);
        let run = sandbox.run(&[command]);
        run.expect_code(5)
            .stderr_has(&format!(
                "this host cannot {command} the cluster yet; nothing was changed"
            ))
            .stderr_has(&format!(
                "needs Vagrant {needed} or later, and this is Vagrant {vagrant}"
            ))
            .stderr_has(&format!("fix: upgrade Vagrant to {needed} or later"));
        nothing_touched(&sandbox);
    }
}

#[test]
fn an_address_outside_the_host_only_ranges_fails_naming_the_file_and_the_line() {
    let sandbox = Sandbox::new(CONFIG);
    let conf = sandbox.host_root.join("etc/vbox/networks.conf");
    std::fs::remove_file(&conf).unwrap();
    let run = sandbox.run(&["create"]);
    run.expect_code(5)
        .stderr_has(
            "127.0.0.2, 127.0.0.3 outside the host-only ranges VirtualBox allows (192.168.56.0/21",
        )
        .stderr_has(&format!(
            "fix: add the line `* 192.168.56.0/21 127.0.0.0/24` to {}",
            conf.display()
        ));
    nothing_touched(&sandbox);

    std::fs::write(&conf, "* 10.0.0.0/8\n").unwrap();
    let run = sandbox.run(&["doctor"]);
    run.stdout_has(&format!(
        "fix: add the line `* 127.0.0.0/24` to {}",
        conf.display()
    ));
}

#[test]
fn too_little_memory_for_the_vms_stops_create() {
    let sandbox = Sandbox::new(&with_cluster("agents = 2"));
    host_file(&sandbox, "proc/meminfo", &meminfo(4000, 3500));
    let run = sandbox.run(&["create"]);
    run.expect_code(5)
        .stderr_has("3 VMs × 2048 MiB = 6144 MiB, but this host has 4000 MiB in all")
        .stderr_has("fix: lower cluster.memory_mb");
    nothing_touched(&sandbox);
}

#[test]
fn wsl_with_virtualbox_is_named_instead_of_a_timeout() {
    let sandbox = Sandbox::new(CONFIG);
    host_file(
        &sandbox,
        "proc/version",
        "Linux version 5.15.153.1-microsoft-standard-WSL2 (root@941d701f84f1) (gcc (GCC) 11.2.0) #1 SMP",
    );
    let run = sandbox.run(&["create"]);
    run.expect_code(5)
        .stderr_has("inside WSL2: WSL2 cannot reach VirtualBox's host-only addresses");
    nothing_touched(&sandbox);
}

#[test]
fn libvirt_without_its_plugin_stops_create_and_with_it_create_goes_on() {
    let mut sandbox = Sandbox::new(&with_cluster("provider = \"libvirt\""));
    sandbox.bin.write("virsh", "#!/bin/sh\necho 10.0.0\n");
    let run = sandbox.run(&["create"]);
    run.expect_code(5)
        .stderr_has("the vagrant-libvirt plugin is not installed")
        .stderr_has("fix: `vagrant plugin install vagrant-libvirt`");
    nothing_touched(&sandbox);

    sandbox.env("FAKE_VAGRANT_PLUGINS", "vagrant-libvirt (0.12.2, global)");
    let run = sandbox.run(&["create"]);
    assert_ne!(run.code(), 5, "{}", run.stderr());
    assert!(
        sandbox.vagrant_calls().iter().any(|c| c.starts_with("up ")),
        "{:?}",
        sandbox.vagrant_calls()
    );
}

#[test]
fn loaded_kvm_modules_are_a_warning_and_create_goes_on() {
    let sandbox = Sandbox::new(CONFIG);
    host_file(
        &sandbox,
        "proc/modules",
        "kvm_intel 487424 0 - Live 0x0000000000000000\nkvm 1404928 1 kvm_intel, Live 0x0000000000000000\n",
    );
    let run = sandbox.run(&["create"]);
    run.stderr_has("warning: KVM: kvm_intel, kvm loaded")
        .stderr_has("VERR_VMX_IN_VMX_ROOT_MODE")
        .stderr_has("`sudo modprobe -r kvm_intel kvm`");
    assert!(
        sandbox.vagrant_calls().iter().any(|c| c.starts_with("up ")),
        "a warning does not stop create: {:?}",
        sandbox.vagrant_calls()
    );
}

#[test]
fn deploy_tells_a_stopped_daemon_from_a_missing_login() {
    let mut sandbox = Sandbox::new(CONFIG);
    let docker = FakeDocker::install(&sandbox.bin, &sandbox.root);
    logged_in(&sandbox);
    sandbox.env("FAKE_DOCKER_DAEMON", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?");
    let run = sandbox.run(&["deploy", "--kubeconfig", "/nonexistent"]);
    run.expect_code(5)
        .stderr_has("fail  docker daemon      not running or not reachable: Cannot connect to the Docker daemon")
        .stderr_has("fix: start it: `sudo systemctl start docker`");
    assert!(!run.stderr().contains("not logged in"), "{}", run.stderr());

    sandbox.env(
        "FAKE_DOCKER_DAEMON",
        "permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock",
    );
    let run = sandbox.run(&["deploy", "--kubeconfig", "/nonexistent"]);
    run.expect_code(5)
        .stderr_has("fail  docker daemon      no permission to use its socket")
        .stderr_has("`sudo usermod -aG docker $USER`");
    // Two runs, each asking the preflight's questions and nothing else: no build, no push.
    let asked_twice: Vec<&str> = PREFLIGHT_CALLS
        .iter()
        .flat_map(|call| [*call, *call])
        .collect();
    assert_eq!(docker.sorted_calls(), asked_twice);
}

#[test]
fn deploy_needs_buildx_only_to_build() {
    let mut sandbox = Sandbox::new(CONFIG);
    FakeDocker::install(&sandbox.bin, &sandbox.root);
    logged_in(&sandbox);
    sandbox.env("FAKE_DOCKER_NO_BUILDX", "1");
    let run = sandbox.run(&["deploy", "--kubeconfig", "/nonexistent"]);
    run.expect_code(5)
        .stderr_has("this host cannot build and push the images yet")
        .stderr_has("fail  docker buildx      the buildx plugin is missing")
        .stderr_has("sudo apt install docker-buildx");

    let run = sandbox.run(&["deploy", "--skip-build", "--kubeconfig", "/nonexistent"]);
    assert_ne!(run.code(), 5, "{}", run.stderr());
    assert!(!run.stderr().contains("buildx"), "{}", run.stderr());
}
