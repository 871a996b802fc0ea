//! Ctrl-C through the built binary: the first stops the children gracefully
//! and says so, a second kills them at once.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use orchestrator::process::GRACE;
use support::survivors;
use support::vagrant::Sandbox;

/// SIGINT to the CLI's whole process group, as a terminal's Ctrl-C.
fn ctrl_c(group: u32) {
    let sent = std::process::Command::new("kill")
        .args(["-INT", "--", &format!("-{group}")])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Waits for a line of `lines` that holds `text`, for at most `within`.
fn wait_for_line(lines: &mpsc::Receiver<String>, text: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(_) => {}
            Err(_) => panic!("no line with {text:?} within {within:?}"),
        }
    }
}

#[test]
fn a_second_ctrl_c_kills_the_children_without_their_grace_period() {
    let mut sandbox = Sandbox::new("[cluster]\nmaster_ip = \"127.0.0.2\"\n");
    sandbox.add_box("bento/ubuntu-24.04 (virtualbox, 202502.21.0)");
    let pids = sandbox.root.join("pids");
    sandbox.env("FAKE_VAGRANT_PIDS", pids.to_str().unwrap());
    sandbox.env("FAKE_VAGRANT_DELAY", "60");
    // A `vagrant up` that ignores SIGINT (an ignored signal stays ignored
    // across exec), as one stuck in a provider call.
    let fake = sandbox.bin.path().join("vagrant");
    std::fs::rename(&fake, sandbox.bin.path().join("vagrant-fake")).unwrap();
    sandbox.bin.write(
        "vagrant",
        "#!/bin/sh\n[ \"$1\" = up ] && trap '' INT\nexec \"$(dirname \"$0\")/vagrant-fake\" \"$@\"\n",
    );

    let mut cli = sandbox
        .command(&["create"])
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (send, lines) = mpsc::channel();
    let stderr = BufReader::new(cli.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    let started = Instant::now();
    while !sandbox.vagrant_calls().iter().any(|c| c.starts_with("up")) {
        assert!(started.elapsed() < Duration::from_secs(30), "no vagrant up");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));

    ctrl_c(cli.id());
    wait_for_line(
        &lines,
        "stopping 1 process (Ctrl-C again to kill it now)",
        Duration::from_secs(5),
    );
    let second = Instant::now();
    ctrl_c(cli.id());
    let status = cli.wait().unwrap();
    assert!(
        second.elapsed() < GRACE / 2,
        "the second Ctrl-C waited {:?}",
        second.elapsed()
    );
    assert_eq!(status.code(), Some(130));
    assert_eq!(survivors(&pids), Vec::<String>::new());
}
