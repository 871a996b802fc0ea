//! The preflight as a user meets it: `doctor` (and `--json`), and `create`,
//! `start` and `deploy` refusing to start on a host that cannot work — before
//! anything changes. Fake `vagrant`, `VBoxManage`, `virsh` and `docker` print
//! chosen versions and errors; the host files (`etc/vbox/networks.conf`,
//! `proc/*`) live in the sandbox's `host_root`.

mod support;

use support::vagrant::Sandbox;

const CONFIG: &str = "[cluster]\nmaster_ip = \"127.0.0.2\"\nready_timeout_secs = 1\n\n[registry]\nnamespace = \"student\"\n";

/// `CONFIG` with one more `[cluster]` setting.
fn with_cluster(setting: &str) -> String {
    CONFIG.replace("[cluster]\n", &format!("[cluster]\n{setting}\n"))
}

/// A fake `docker` that records its calls in `docker-calls` and answers
/// `version` and `buildx version`; `FAKE_DOCKER_DAEMON` is what the daemon
/// says instead of answering, `FAKE_DOCKER_NO_BUILDX` removes the plugin.
fn fake_docker(sandbox: &Sandbox) {
    let script = format!(
        r#"#!/bin/sh
echo "$*" >> '{}'
case "$1 $2" in
  "version --format")
    if [ -n "$FAKE_DOCKER_DAEMON" ]; then echo "$FAKE_DOCKER_DAEMON" >&2; exit 1; fi
    echo 27.3.1 ;;
  "buildx version")
    if [ -n "$FAKE_DOCKER_NO_BUILDX" ]; then echo "docker: 'buildx' is not a docker command." >&2; exit 1; fi
    echo "github.com/docker/buildx v0.17.1 257815a" ;;
esac
"#,
        sandbox.root.join("docker-calls").display()
    );
    sandbox.bin.write("docker", &script);
}

/// The calls the fake `docker` received, sorted (the preflight asks its
/// questions side by side, in no set order).
fn docker_calls(sandbox: &Sandbox) -> Vec<String> {
    let mut calls: Vec<String> = std::fs::read_to_string(sandbox.root.join("docker-calls"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    calls.sort();
    calls
}

/// What a deploy that builds and pushes asks docker before anything is built
/// (`src/preflight/probe.rs`), sorted as `docker_calls` returns them.
const DEPLOY_PREFLIGHT: [&str; 4] = [
    "buildx inspect",
    "buildx version",
    "info --format {{json .DriverStatus}}",
    "version --format {{.Server.Version}}",
];

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
    fake_docker(&sandbox);
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
    for line in [
        "ok    host               linux amd64",
        "ok    vagrant            2.4.9 (",
        "ok    VirtualBox         7.1.4 (",
        "ok    box                bento/ubuntu-24.04 for virtualbox on amd64 is not downloaded yet",
        "ok    host-only network  127.0.0.2 to 127.0.0.3 inside 192.168.56.0/21 127.0.0.0/8 (from ",
        "ok    KVM                no KVM module loaded",
        "ok    memory             2 VMs × 2048 MiB = 4096 MiB; 12000 MiB available",
        "ok    docker daemon      answers (Docker Engine 27.3.1)",
        "ok    docker buildx      0.17.1",
        "ok    docker login       credentials for docker.io in ",
        "ok    kubectl            ",
        "12 ok, 0 warning(s), 0 failure(s)",
    ] {
        run.stdout_has(line);
    }
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
    run.expect_code(3);
    run.stdout_has("fail  libvirt            `virsh` not found on PATH")
        .stdout_has("vagrant plugin install vagrant-libvirt")
        .stdout_has("fail  docker             `docker` not found on PATH")
        .stdout_has("docs.docker.com")
        .stdout_has("warn  kubectl            `kubectl` not found on PATH")
        .stderr_has("failed: libvirt, vagrant-libvirt, docker");
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
    fake_docker(&sandbox);
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
    let asked_twice: Vec<&str> = DEPLOY_PREFLIGHT
        .iter()
        .flat_map(|call| [*call, *call])
        .collect();
    assert_eq!(docker_calls(&sandbox), asked_twice);
}

#[test]
fn deploy_needs_buildx_only_to_build() {
    let mut sandbox = Sandbox::new(CONFIG);
    fake_docker(&sandbox);
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
