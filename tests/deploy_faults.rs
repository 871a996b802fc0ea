//! `deploy` while kube-sim's control plane misbehaves: fault drills, which hold
//! kube-sim alone (`kube_sim::exclusive`), so they live apart from the
//! ordinary cluster tests of `deploy.rs`. `#[ignore]`d; run with
//! `KUBE_SIM_KUBECONFIG` set and `--ignored`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::kube_sim::exclusive;
use support::project::{Project, STUDENT, in_file, replaced, text};

/// Waits up to `limit` for the child to end; kills it past that.
fn wait_for(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Starts `deploy` of the manifests alone (images neither built nor pushed)
/// in `project`, for 180 s at most; its standard output goes to the
/// project's `stdout`, its standard error to the log this returns, which
/// the drills read while it runs.
fn start_deploy(project: &Project, kubeconfig: &str) -> (Child, PathBuf) {
    let log = project.file("deploy.log");
    let child = project
        .command(
            std::env::var("PATH").unwrap(),
            &[
                "deploy",
                "--skip-build",
                "--skip-push",
                "--timeout",
                "180",
                "--kubeconfig",
                kubeconfig,
            ],
        )
        .stdout(std::fs::File::create(project.file("stdout")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    (child, log)
}

/// Waits until the child's `log` has `text`, checking every 20 ms (the drills
/// act on what it says at once); panics if the child ends first, or after a minute.
fn wait_for_logged(child: &mut Child, log: &Path, text: &str) {
    let read_log = || std::fs::read_to_string(log).unwrap_or_default();
    let started = Instant::now();
    while !read_log().contains(text) {
        let ended = child.try_wait().unwrap();
        assert!(
            ended.is_none() && started.elapsed() < Duration::from_secs(60),
            "the deploy never logged {text:?} ({ended:?}):\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
fn a_deploy_outlives_an_api_server_restart_during_its_rollout_wait() {
    let kube_sim = exclusive();
    let kubeconfig = &kube_sim.kubeconfig;
    // kube-sim's pods are Ready within a second; the Deployment controller
    // then keeps inventory-app unavailable for 8 s more, so the restart falls
    // inside the wait for it.
    let project = Project::new(
        "deploy-fault",
        STUDENT,
        in_file("inventory-app.yaml", |text| {
            replaced(
                &text,
                "spec:\n  selector:\n",
                "spec:\n  minReadySeconds: 8\n  selector:\n",
            )
        }),
    );
    let (mut child, log) = start_deploy(&project, kubeconfig);

    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    // Once the wait reports, every object of the wave has been applied.
    wait_for_logged(&mut child, &log, "Deployment/inventory-app: waiting: ");
    let restart = Instant::now();
    kube_sim.restart_apiserver(2);
    let down = restart.elapsed();
    let back = Instant::now();

    let status = wait_for(&mut child, Duration::from_secs(240));
    println!(
        "the API server was away {:.1}s; the deploy ended {:.1}s after it was back",
        down.as_secs_f64(),
        back.elapsed().as_secs_f64()
    );
    let out = format!("{}{}", project.read("stdout"), read_log());
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "the deploy must complete:\n{out}"
    );
    assert!(
        out.contains("Deployment/inventory-app: watch interrupted, resuming"),
        "the restart must have hit the wait:\n{out}"
    );
    assert!(out.contains("Deployment/inventory-app: ok: ready"), "{out}");
    assert!(out.contains("gateway: http://127.0.0.10:3000"), "{out}");
}

#[test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
fn a_deploy_waits_out_a_registrys_pull_limit() {
    // kube-sim answers every pull of a `ratelimited/...` image with Docker
    // Hub's 429 toomanyrequests for the first 20 s of each pod's life.
    let kube_sim = exclusive();
    let project = Project::new("deploy-pull-limit", STUDENT, |_, text| text);
    let started = Instant::now();
    let output = project
        .command(
            std::env::var("PATH").unwrap(),
            &[
                "deploy",
                "--skip-build",
                "--skip-push",
                "--kubeconfig",
                &kube_sim.kubeconfig,
            ],
        )
        .env("DOCKERHUB_USERNAME", "ratelimited")
        .output()
        .unwrap();
    let took = started.elapsed();
    let out = text(&output);
    println!(
        "the deploy of images refused for their first 20 s ended in {:.1}s:\n{out}",
        took.as_secs_f64()
    );
    assert!(
        output.status.success(),
        "the deploy must wait out the pull limit:\n{out}"
    );
    assert!(
        out.contains("cannot pull its image yet (ErrImagePull: the registry's pull rate limit")
            || out.contains(
                "cannot pull its image yet (ImagePullBackOff: the registry's pull rate limit"
            ),
        "the wait must have met the limit and said so:\n{out}"
    );
    assert!(out.contains("gateway: http://127.0.0.10:3000"), "{out}");
}

/// A process held still (SIGSTOP) until this is dropped (SIGCONT), also
/// when the drill fails.
struct Held(u32);

impl Held {
    fn new(pid: u32) -> Self {
        assert!(signal(pid, "STOP"), "cannot stop process {pid}");
        Held(pid)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

/// Whether `kill -SIGNAL pid` succeeded.
fn signal(pid: u32, signal: &str) -> bool {
    std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|status| status.success())
}

#[test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
fn a_deploy_outlives_an_api_server_away_longer_than_a_request_while_it_applies_a_wave() {
    // Longer than a request's own patience (30 s), well within the wave's.
    const DOWN_SECS: u32 = 45;
    const NEXT_WAVE: &str = "wave 4/6";
    const DATABASES_AND_QUEUE: [&str; 3] = ["billing-db", "inventory-db", "rabbitmq"];
    let kube_sim = exclusive();
    let kubeconfig = &kube_sim.kubeconfig;
    let project = Project::new("deploy-apply-outage", STUDENT, |_, text| text);
    let (mut child, log) = start_deploy(&project, kubeconfig);
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();

    // The API server is to be stopped the moment the databases' and queue's
    // wave turns ready, so that it is away while the next wave is applied.
    // So that the deploy cannot go on before, it is held still (SIGSTOP)
    // while it waits for that wave (every object of a wave is applied before
    // the wait reports), until kubectl has seen the wave ready and the API
    // server has stopped taking connections; it reads the news then, as the
    // API server's watches end.
    wait_for_logged(&mut child, &log, "StatefulSet/rabbitmq: waiting: ");
    let held = Held::new(child.id());
    assert!(
        !read_log().contains(NEXT_WAVE),
        "the drill came too late: the deploy saw its wave ready already:\n{}",
        read_log()
    );
    for workload in DATABASES_AND_QUEUE {
        let status = std::process::Command::new("kubectl")
            .args(["--kubeconfig", kubeconfig, "-n", &project.namespace.name])
            .args(["rollout", "status", "--timeout=60s"])
            .arg(format!("statefulset/{workload}"))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{workload} did not become ready");
    }
    // The watch events saying so are on their way to the deploy.
    std::thread::sleep(Duration::from_secs(1));
    let (away, deploy_when_back) = std::thread::scope(|scope| {
        let outage = scope.spawn(|| kube_sim.restart_apiserver(DOWN_SECS));
        // kube-sim's API server listens there (its README).
        while std::net::TcpStream::connect("127.0.0.1:6443").is_ok() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let gone = Instant::now();
        drop(held);
        outage.join().unwrap();
        (gone.elapsed(), read_log())
    });
    let back = Instant::now();
    assert!(
        deploy_when_back.contains(NEXT_WAVE),
        "the deploy must have begun the next wave while the API server was away:\n{deploy_when_back}"
    );

    let status = wait_for(&mut child, Duration::from_secs(240));
    println!(
        "the API server refused connections for {:.1}s from the moment the wave turned ready; the deploy ended {:.1}s after it was back",
        away.as_secs_f64(),
        back.elapsed().as_secs_f64()
    );
    let out = format!("{}{}", project.read("stdout"), read_log());
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "the deploy must complete:\n{out}"
    );
    assert!(out.contains("Deployment/inventory-app: ok: ready"), "{out}");
    assert!(out.contains("gateway: http://127.0.0.10:3000"), "{out}");
}
