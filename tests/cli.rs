//! The command line's conventions through the built binary: where the project
//! is found, which stream gets what, colour, and the exit codes.

mod support;

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use support::vagrant::{Run, Sandbox};

const CONFIG: &str = "[cluster]\nmaster_ip = \"127.0.0.2\"\nready_timeout_secs = 1\n";

#[test]
fn a_subdirectory_uses_the_project_above_it() {
    let mut sandbox = Sandbox::new(CONFIG);
    // The master's boot fails: nothing after it runs, whichever settings apply.
    sandbox.env("FAKE_VAGRANT_FAIL", "up:master");
    let manifests = sandbox.project.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();

    let run = Run(sandbox
        .command(&["create"])
        .current_dir(&manifests)
        .output()
        .unwrap());
    run.expect_code(1);
    assert!(sandbox.state_file("token").is_file(), "the project's token");
    assert!(
        !manifests.join(".orchestrator").exists(),
        "no second state directory in the subdirectory"
    );
    let vagrant_cwd = sandbox.read(&sandbox.vagrant_state.join("cwd"));
    assert_eq!(vagrant_cwd.trim(), sandbox.project.display().to_string());
    let env = sandbox.read(&sandbox.vagrant_state.join("env"));
    assert!(env.contains("127.0.0.2"), "the project's settings: {env}");
}

#[test]
fn a_bad_configuration_above_is_reported_from_a_subdirectory() {
    let sandbox = Sandbox::new("[cluster]\nagents = 0\n");
    let manifests = sandbox.project.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let run = Run(sandbox
        .command(&["logs", "api-gateway", "--kubeconfig", "/nonexistent"])
        .current_dir(&manifests)
        .output()
        .unwrap());
    run.expect_code(2);
    let file = sandbox.project.join("orchestrator.toml");
    let line = 1 + sandbox
        .read(&file)
        .lines()
        .position(|line| line == "agents = 0")
        .unwrap();
    run.stderr_has(&format!(
        "{}:{line}:10: cluster.agents must be 1 to 9",
        file.display()
    ));
}

#[test]
fn a_bad_docker_hub_user_in_the_environment_is_named() {
    let mut sandbox = Sandbox::new(CONFIG);
    sandbox.env("DOCKERHUB_USERNAME", "Not/Me");
    let run = sandbox.run(&["plan", "--kubeconfig", "/nonexistent"]);
    run.expect_code(2);
    run.stderr_has("DOCKERHUB_USERNAME \"Not/Me\" is not an image namespace");
}

#[test]
fn a_wave_timeout_is_one_second_to_one_day() {
    let sandbox = Sandbox::new(CONFIG);
    for secs in ["0", "86401", "18446744073709551615"] {
        let run = sandbox.run(&["deploy", "--dry-run", "--timeout", secs]);
        run.expect_code(2);
        run.stderr_has("--timeout").stderr_has("1..=86400");
    }
}

/// Whether `text` holds an ANSI colour or style sequence (`ESC [ ... m`);
/// indicatif's cursor movements do not count.
fn has_style(text: &str) -> bool {
    text.split('\x1b').skip(1).any(|rest| {
        rest.strip_prefix('[').is_some_and(|params| {
            let end = params
                .find(|c: char| !(c.is_ascii_digit() || c == ';'))
                .unwrap_or(params.len());
            params[end..].starts_with('m')
        })
    })
}

/// Runs the binary with `args` on a terminal that `script` provides, with the
/// sandbox's environment plus `env`, its stdout sent to `stdout_file` if given.
/// Returns the exit status and what the terminal showed.
fn run_on_a_terminal(
    sandbox: &Sandbox,
    args: &[&str],
    stdout_file: Option<&Path>,
    env: &[(&str, &str)],
) -> (ExitStatus, String) {
    let command = sandbox.command(args);
    let mut line = format!(
        "'{}' {}",
        command.get_program().to_string_lossy(),
        args.join(" ")
    );
    if let Some(file) = stdout_file {
        line += &format!(" > '{}'", file.display());
    }
    let terminal = sandbox.root.join("terminal");
    let status = Command::new("/usr/bin/script")
        .args(["-q", "-e", "-c", &line])
        .arg(&terminal)
        .current_dir(&sandbox.project)
        .env_clear()
        .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("TERM", "xterm-256color")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    (status, sandbox.read(&terminal))
}

/// A sandbox whose two VMs are running, for `stop`.
fn running_cluster() -> Sandbox {
    let sandbox = Sandbox::new(CONFIG);
    sandbox.set_machine("master", "running");
    sandbox.set_machine("agent", "running");
    sandbox
}

#[test]
fn progress_goes_to_stderr_and_only_the_result_to_stdout() {
    let sandbox = running_cluster();
    let run = sandbox.run(&["stop", "-v"]);
    run.expect_code(0);
    assert_eq!(run.stdout(), "cluster stopped\n");
    run.stderr_has("stop agent: ok");
}

#[test]
fn on_a_terminal_stdout_redirected_to_a_file_gets_only_the_result() {
    let sandbox = running_cluster();
    let out = sandbox.root.join("stdout");
    let (status, terminal) = run_on_a_terminal(&sandbox, &["stop"], Some(&out), &[]);
    assert!(status.success());
    assert_eq!(sandbox.read(&out), "cluster stopped\n");
    assert!(terminal.contains("stop agent"), "{terminal}");
    assert!(has_style(&terminal), "colour on the terminal: {terminal:?}");
}

#[test]
fn no_color_on_a_terminal_and_clicolor_force_off_it() {
    let sandbox = Sandbox::new(CONFIG);
    let args = ["logs", "api-gateway", "--since", "soon"];
    let plain = sandbox.run(&args);
    plain.expect_code(2).stderr_has("error: --since soon");
    assert!(!has_style(&plain.stderr()), "{:?}", plain.stderr());

    let forced = Run(sandbox
        .command(&args)
        .env("CLICOLOR_FORCE", "1")
        .output()
        .unwrap());
    forced.expect_code(2);
    assert!(has_style(&forced.stderr()), "{:?}", forced.stderr());

    let (status, terminal) = run_on_a_terminal(&sandbox, &args, None, &[("NO_COLOR", "1")]);
    assert_eq!(status.code(), Some(2));
    assert!(terminal.contains("error: --since soon"), "{terminal}");
    assert!(!has_style(&terminal), "NO_COLOR: {terminal:?}");
}

#[test]
fn help_lists_every_exit_code() {
    let sandbox = Sandbox::new(CONFIG);
    let run = sandbox.run(&["--help"]);
    run.expect_code(0);
    for (code, meaning) in orchestrator::error::exit::TABLE {
        run.stdout_has(&format!("{code:>3}  {}\n", meaning.replace('`', "")));
    }
}

#[test]
fn completions_offer_the_stack_components_and_print_nothing_else() {
    let sandbox = Sandbox::new(CONFIG);
    let run = sandbox.run(&["completions", "bash"]);
    run.expect_code(0);
    run.stdout_has("inventory-db billing-db rabbitmq inventory-app billing-app api-gateway");
    assert_eq!(run.stderr(), "");
}
