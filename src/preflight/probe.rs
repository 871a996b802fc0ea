//! Gathering the facts the rules judge: tools on `PATH`, what they answer to
//! a version question, and a few host files. Nothing here changes anything,
//! and every program asked gets a deadline.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::Scope;
use crate::config::{Config, Provider};
use crate::prereq::{self, Tool};

/// What a program answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It exited 0; its standard output and error.
    Ok(String),
    /// It exited non-zero (what it printed) or could not start (why).
    Failed(String),
    /// It did not finish within this time, and was killed.
    TimedOut(Duration),
}

impl Answer {
    /// The text, whether the program succeeded or not.
    pub fn text(&self) -> &str {
        match self {
            Answer::Ok(text) | Answer::Failed(text) => text,
            Answer::TimedOut(_) => "",
        }
    }

    /// The first non-empty line, to quote in a message.
    pub fn first_line(&self) -> String {
        match self {
            Answer::TimedOut(limit) => format!("no answer within {limit:?}"),
            _ => self
                .text()
                .lines()
                .map(str::trim)
                .find(|line| !line.is_empty())
                .unwrap_or("(nothing printed)")
                .chars()
                .take(200)
                .collect(),
        }
    }
}

/// Runs `program args` with no input and returns what it answered within `timeout`.
pub async fn ask(program: &Path, args: &[&str], timeout: Duration) -> Answer {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match tokio::time::timeout(timeout, command.output()).await {
        Err(_) => Answer::TimedOut(timeout),
        Ok(Err(err)) => Answer::Failed(format!("could not start {}: {err}", program.display())),
        Ok(Ok(output)) => {
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            match output.status.success() {
                true => Answer::Ok(text),
                false => Answer::Failed(text),
            }
        }
    }
}

/// Where the host files are read: under `/`, or under the directory
/// `ORCHESTRATOR_HOST_ROOT` names (for tests, which cannot write `/etc`).
#[derive(Debug, Clone)]
pub struct HostFiles {
    root: PathBuf,
}

impl HostFiles {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HostFiles { root: root.into() }
    }

    pub fn from_env() -> Self {
        HostFiles::new(std::env::var_os("ORCHESTRATOR_HOST_ROOT").unwrap_or_else(|| "/".into()))
    }

    /// The path of `relative` (such as `etc/vbox/networks.conf`) on this host.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    fn read(&self, relative: &str) -> Option<String> {
        std::fs::read_to_string(self.path(relative)).ok()
    }
}

/// Everything the rules look at; `None` where it was not probed (not needed
/// for the scope, its tool missing) or could not be read.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The operating system as Rust names it: `linux`, `macos`, ...
    pub os: String,
    /// The CPU as Vagrant and Kubernetes name it: `amd64`, `arm64`, ...
    pub arch: String,
    pub wsl: bool,
    /// Each tool looked up, and where it was found.
    pub tools: Vec<prereq::Lookup>,
    pub vagrant_version: Option<Answer>,
    /// `VBoxManage --version` or `virsh --version`.
    pub provider_version: Option<Answer>,
    pub vagrant_plugins: Option<Answer>,
    pub vagrant_boxes: Option<Answer>,
    /// VirtualBox's `networks.conf`: its path, and its text unless absent.
    pub networks_conf: (PathBuf, Option<String>),
    /// `/proc/modules`.
    pub modules: Option<String>,
    /// `/proc/meminfo`.
    pub meminfo: Option<String>,
    /// `docker version --format {{.Server.Version}}`: only the daemon can answer it.
    pub docker_server: Option<Answer>,
    pub buildx: Option<Answer>,
    /// `docker buildx inspect`: the builder the builds run on, and its driver.
    pub builder: Option<Answer>,
    /// `docker info --format {{json .DriverStatus}}`: whether the daemon keeps
    /// its images in containerd (which lets its builder hold several platforms).
    pub image_store: Option<Answer>,
    /// Docker's `config.json`: its path, and its text unless absent.
    pub docker_config: Option<(PathBuf, Option<String>)>,
    /// The HTTP status of the registry's anonymous `GET /v2/` (the Registry
    /// API's version check: 200 when it needs no login, 401 when it does), if
    /// it answered; asked of registries other than Docker Hub only.
    pub registry_status: Option<u16>,
}

impl Facts {
    /// Where `tool` was found, if it was looked up and found.
    pub fn found(&self, tool: Tool) -> Option<&Path> {
        self.tools
            .iter()
            .find(|c| c.tool == tool)
            .and_then(|c| c.path.as_deref())
    }
}

/// The CPU name Vagrant and Kubernetes use for Rust's `target_arch`.
pub fn arch_name(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        other => other,
    }
}

/// WSL says so in the kernel's version string, and sets `WSL_DISTRO_NAME`.
pub fn is_wsl(proc_version: Option<&str>, distro_name: Option<&str>) -> bool {
    proc_version.is_some_and(|v| v.to_lowercase().contains("microsoft"))
        || distro_name.is_some_and(|name| !name.is_empty())
}

/// Probes what `scope` needs, the programs side by side.
pub async fn probe(config: &Config, scope: Scope, files: &HostFiles, timeout: Duration) -> Facts {
    let tools = prereq::check(&scope.tools(config));
    let mut facts = Facts {
        os: std::env::consts::OS.to_string(),
        arch: arch_name(std::env::consts::ARCH).to_string(),
        wsl: is_wsl(
            files.read("proc/version").as_deref(),
            std::env::var("WSL_DISTRO_NAME").ok().as_deref(),
        ),
        tools,
        ..Facts::default()
    };
    if scope.vms() {
        facts.networks_conf.0 = files.path("etc/vbox/networks.conf");
        facts.networks_conf.1 = std::fs::read_to_string(&facts.networks_conf.0).ok();
        facts.modules = files.read("proc/modules");
        facts.meminfo = files.read("proc/meminfo");
    }
    let provider = config.cluster.provider;
    let vagrant = facts.found(Tool::Vagrant).map(Path::to_path_buf);
    let provider_tool = facts.found(Tool::provider(provider)).map(Path::to_path_buf);
    let docker = facts.found(Tool::Docker).map(Path::to_path_buf);
    let ask_if = |program: Option<&PathBuf>, wanted: bool, args: &'static [&'static str]| {
        let program = program.filter(|_| wanted).cloned();
        async move {
            match program {
                Some(program) => Some(ask(&program, args, timeout).await),
                None => None,
            }
        }
    };
    let registry = &config.registry.server;
    let ask_registry = scope.push() && docker.is_some() && registry != "docker.io";
    let (vagrant_version, provider_version, plugins, boxes, server, buildx, builder, image_store) = tokio::join!(
        ask_if(vagrant.as_ref(), scope.vms(), &["--version"]),
        ask_if(provider_tool.as_ref(), scope.vms(), &["--version"]),
        ask_if(
            vagrant.as_ref(),
            scope.vms() && provider == Provider::Libvirt,
            &["plugin", "list"]
        ),
        ask_if(vagrant.as_ref(), scope.box_check(), &["box", "list"]),
        ask_if(
            docker.as_ref(),
            scope.docker(),
            &["version", "--format", "{{.Server.Version}}"]
        ),
        ask_if(docker.as_ref(), scope.build(), &["buildx", "version"]),
        ask_if(docker.as_ref(), scope.build(), &["buildx", "inspect"]),
        ask_if(
            docker.as_ref(),
            scope.build(),
            &["info", "--format", "{{json .DriverStatus}}"]
        ),
    );
    facts.vagrant_version = vagrant_version;
    facts.provider_version = provider_version;
    facts.vagrant_plugins = plugins;
    facts.vagrant_boxes = boxes;
    facts.docker_server = server;
    facts.buildx = buildx;
    facts.builder = builder;
    facts.image_store = image_store;
    if ask_registry {
        facts.registry_status = registry_status(registry, timeout.min(REGISTRY_TIMEOUT)).await;
    }
    if scope.push() && docker.is_some() {
        facts.docker_config = docker_config_file().map(|path| {
            let text = std::fs::read_to_string(&path).ok();
            (path, text)
        });
    }
    facts
}

const REGISTRY_TIMEOUT: Duration = Duration::from_secs(5);

/// The status of `GET /v2/` on `server` (`host[:port]`) without credentials,
/// over plain HTTP for a registry on this machine (as Docker itself allows
/// there), else HTTPS; `None` when it does not answer.
pub async fn registry_status(server: &str, timeout: Duration) -> Option<u16> {
    let host = server.rsplit_once(':').map_or(server, |(host, port)| {
        match port.bytes().all(|b| b.is_ascii_digit()) {
            true => host,
            false => server,
        }
    });
    let local = host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let scheme = if local { "http" } else { "https" };
    let client = reqwest::Client::builder().timeout(timeout).build().ok()?;
    let response = client
        .get(format!("{scheme}://{server}/v2/"))
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

/// Docker's client configuration: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config_file() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")))
        .map(|dir| dir.join("config.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_program_that_does_not_answer_is_killed_at_the_deadline() {
        let started = std::time::Instant::now();
        let answer = ask(
            Path::new("sh"),
            &["-c", "sleep 30"],
            Duration::from_millis(200),
        )
        .await;
        assert_eq!(answer, Answer::TimedOut(Duration::from_millis(200)));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(answer.first_line(), "no answer within 200ms");
    }

    #[tokio::test]
    async fn answers_keep_both_streams_and_the_exit_status() {
        let ok = ask(
            Path::new("sh"),
            &["-c", "echo out; echo err >&2"],
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(ok, Answer::Ok("out\nerr\n".into()));
        let failed = ask(
            Path::new("sh"),
            &["-c", "echo '' ; echo broken >&2; exit 3"],
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(failed.first_line(), "broken");
        let missing = ask(Path::new("/nonexistent/tool"), &[], Duration::from_secs(5)).await;
        assert!(
            matches!(&missing, Answer::Failed(why) if why.contains("could not start")),
            "{missing:?}"
        );
    }

    /// A registry on loopback answering `GET /v2/` with `status`; its `host:port`.
    async fn registry_answering(status: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0u8; 1024];
                let read = stream.read(&mut request).await.unwrap_or(0);
                let asked = String::from_utf8_lossy(&request[..read]);
                let status = match asked.starts_with("GET /v2/ ") {
                    true => status,
                    false => "404 Not Found",
                };
                let _ = stream
                    .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        format!("localhost:{}", address.port())
    }

    #[tokio::test]
    async fn a_local_registry_is_asked_over_plain_http_without_credentials() {
        let timeout = Duration::from_secs(5);
        let open = registry_answering("200 OK").await;
        assert_eq!(registry_status(&open, timeout).await, Some(200));
        let closed = registry_answering("401 Unauthorized").await;
        assert_eq!(registry_status(&closed, timeout).await, Some(401));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let nobody = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        drop(listener);
        assert_eq!(registry_status(&nobody, timeout).await, None);
    }

    #[test]
    fn wsl_is_told_by_the_kernel_or_the_environment() {
        let wsl_kernel = "Linux version 5.15.153.1-microsoft-standard-WSL2 (root@941d701f84f1) (gcc (GCC) 11.2.0)";
        assert!(is_wsl(Some(wsl_kernel), None));
        assert!(is_wsl(None, Some("Ubuntu")));
        assert!(!is_wsl(
            Some("Linux version 6.8.0-45-generic (buildd@lcy02-amd64-075)"),
            None
        ));
        assert!(!is_wsl(None, Some("")));
    }

    #[test]
    fn arch_names_are_vagrants() {
        assert_eq!(arch_name("x86_64"), "amd64");
        assert_eq!(arch_name("aarch64"), "arm64");
    }
}
