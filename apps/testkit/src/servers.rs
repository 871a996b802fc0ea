//! Private PostgreSQL and RabbitMQ servers, for the tests that stop and
//! restart one: the shared servers are never disturbed. Both drop root, as
//! the servers require.

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{free_port, unique_name};

const POSTGRES_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Runs `program` as `user`, panicking with its output when it fails.
fn run_as(user: &str, program: &str, args: &[&str]) {
    let output = Command::new("runuser")
        .args(["-u", user, "--", program])
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {output:?}"
    );
}

/// A temporary directory that `user` owns.
fn directory_for(user: &str) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("chown")
        .args(["-R", &format!("{user}:"), &dir.path().display().to_string()])
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cannot hand {} to {user}",
        dir.path().display()
    );
    dir
}

fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing answers on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub struct PrivatePostgres {
    dir: TempDir,
    pub port: u16,
}

impl PrivatePostgres {
    pub fn start() -> Self {
        let dir = directory_for("postgres");
        let data = dir.path().join("data").display().to_string();
        run_as(
            "postgres",
            &format!("{POSTGRES_BIN}/initdb"),
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        let server = PrivatePostgres {
            dir,
            port: free_port(),
        };
        server.start_again();
        server
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.path().join("data").display().to_string();
        let mut all = vec!["-D", &data, "-w"];
        all.extend(args);
        run_as("postgres", &format!("{POSTGRES_BIN}/pg_ctl"), &all);
    }

    pub fn start_again(&self) {
        let dir = self.dir.path().display().to_string();
        let options = format!(
            "-p {} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port
        );
        let log = self.dir.path().join("log").display().to_string();
        self.pg_ctl(&["-o", &options, "-l", &log, "start"]);
    }

    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "stop"]);
    }

    /// The directory of the server's Unix socket (`PGHOST` for psql).
    pub fn socket_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// From now on, TCP clients must give their password (SCRAM), as in the
    /// cluster; the Unix socket still trusts its clients, as the image's init
    /// scripts do.
    pub fn require_passwords_over_tcp(&self) {
        let hba = self.dir.path().join("data/pg_hba.conf");
        let rules: String = std::fs::read_to_string(&hba)
            .unwrap()
            .lines()
            .map(|line| match line.starts_with("host") {
                true => line.replace("trust", "scram-sha-256"),
                false => line.to_owned(),
            } + "\n")
            .collect();
        std::fs::write(&hba, rules).unwrap();
        self.pg_ctl(&["reload"]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").display().to_string();
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{POSTGRES_BIN}/pg_ctl")])
            .args(["-D", &data, "-m", "immediate", "stop"])
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status();
    }
}

pub struct PrivateRabbit {
    dir: TempDir,
    node: String,
    pub port: u16,
    dist_port: u16,
    env: Vec<(String, String)>,
    server: Mutex<Option<Child>>,
}

impl PrivateRabbit {
    pub fn start() -> Self {
        Self::start_configured("", &[])
    }

    /// A server with `config` added to its configuration file and `env` in
    /// its environment (e.g. RABBITMQ_DEFAULT_USER), as a pod would have.
    pub fn start_configured(config: &str, env: &[(&str, &str)]) -> Self {
        let dir = directory_for("rabbitmq");
        let port = free_port();
        let path = |name: &str| dir.path().join(name);
        // Its own configuration: the system's names the shared server's port.
        std::fs::write(
            path("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n{config}"),
        )
        .unwrap();
        std::fs::write(path("enabled_plugins"), "[].\n").unwrap();
        let server = PrivateRabbit {
            node: format!("{}@localhost", unique_name("test")),
            port,
            dist_port: free_port(),
            env: env
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            server: Mutex::new(None),
            dir,
        };
        let status = Command::new("chown")
            .args(["-R", "rabbitmq:", &server.dir.path().display().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        server.start_again();
        server
    }

    pub fn start_again(&self) {
        let path = |name: &str| self.dir.path().join(name);
        let log = std::fs::File::create(path("server.out")).unwrap();
        let child = Command::new("runuser")
            .args(["-u", "rabbitmq", "--", "rabbitmq-server"])
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", path("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", path("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", path("mnesia"))
            .env("RABBITMQ_LOG_BASE", path("log"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", path("feature_flags"))
            .env("RABBITMQ_PID_FILE", path("pid"))
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .current_dir(self.dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start rabbitmq-server");
        *self.server.lock().unwrap() = Some(child);
        wait_for_port(self.port, Duration::from_secs(60));
    }

    /// Runs rabbitmqctl on this node; what it printed.
    pub fn ctl(&self, args: &[&str]) -> String {
        let output = Command::new("runuser")
            .args(["-u", "rabbitmq", "--", "rabbitmqctl", "-n", &self.node])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "rabbitmqctl {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A clean stop: queued persistent messages stay on disk.
    pub fn stop(&self) {
        run_as("rabbitmq", "rabbitmqctl", &["-n", &self.node, "stop"]);
        if let Some(mut child) = self.server.lock().unwrap().take() {
            child.wait().unwrap();
        }
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.lock().unwrap().take() {
            let _ = Command::new("runuser")
                .args([
                    "-u",
                    "rabbitmq",
                    "--",
                    "rabbitmqctl",
                    "-n",
                    &self.node,
                    "stop",
                ])
                .stderr(Stdio::null())
                .stdout(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
