//! `orchestrator.toml`: every field has a default, unknown keys are errors, and
//! a bad file is reported with its line and column before anything runs.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::error::Failure;

pub const DEFAULT_FILE: &str = "orchestrator.toml";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub cluster: ClusterConfig,
    pub registry: RegistryConfig,
    pub deploy: DeployConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Number of agent VMs besides the master.
    pub agents: u8,
    /// The master's private-network address; agents take the following ones.
    pub master_ip: Ipv4Addr,
    /// Vagrant box for every VM.
    #[serde(rename = "box")]
    pub box_name: String,
    pub provider: Provider,
    pub cpus: u32,
    pub memory_mb: u32,
    /// The K3s release installed on every node.
    pub k3s_version: String,
    /// Where K3s releases are downloaded from: `URL/VERSION/k3s` and `URL/VERSION/sha256sum-ARCH.txt`.
    pub k3s_release_url: String,
    /// The K3s install script.
    pub k3s_installer_url: String,
    /// How long `create` and `start` wait for every node to be Ready.
    pub ready_timeout_secs: u64,
    /// How long one vagrant step (`up`, `provision`, `reload`, `halt`) may
    /// run before it is stopped.
    pub step_timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Virtualbox,
    Libvirt,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Registry host the images are pushed to.
    pub server: String,
    /// Docker Hub user or organisation; `DOCKERHUB_USERNAME` overrides it.
    pub namespace: String,
    /// Import the images straight into every node (`deploy --sideload`)
    /// instead of pushing them to the registry.
    pub sideload: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeployConfig {
    /// Kubernetes namespace of the stack.
    pub namespace: String,
    /// Directory of the manifests, relative to the configuration file.
    pub manifests: PathBuf,
    /// Directory of the `NAME.Dockerfile`s, relative to the configuration file.
    pub dockerfiles: PathBuf,
    /// How long each wave may take to become ready.
    pub timeout_secs: u64,
}

/// The K3s release installed by default: the one K3s's stable channel named
/// when it was chosen (k3s-io/k3s#14553), of Kubernetes 1.36, supported
/// upstream until 2027-06-28 (kubernetes.io/releases/1.36). The Vagrantfile
/// and orchestrator.toml repeat it (a test keeps them equal).
pub const DEFAULT_K3S_VERSION: &str = "v1.36.4+k3s1";

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            agents: 1,
            master_ip: Ipv4Addr::new(192, 168, 56, 10),
            box_name: "bento/ubuntu-24.04".into(),
            provider: Provider::Virtualbox,
            cpus: 2,
            memory_mb: 2048,
            k3s_version: DEFAULT_K3S_VERSION.into(),
            k3s_release_url: "https://github.com/k3s-io/k3s/releases/download".into(),
            k3s_installer_url: "https://get.k3s.io".into(),
            ready_timeout_secs: 600,
            step_timeout_secs: 900,
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            server: "docker.io".into(),
            namespace: String::new(),
            sideload: false,
        }
    }
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            namespace: "orchestrator".into(),
            manifests: "manifests".into(),
            dockerfiles: "dockerfiles".into(),
            timeout_secs: 300,
        }
    }
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Virtualbox => "virtualbox",
            Provider::Libvirt => "libvirt",
        }
    }
}

/// The machine K3s's server runs on; the Vagrantfile names it so.
pub const MASTER: &str = "master";

impl ClusterConfig {
    /// The Vagrant machine names: `master`, `agent`, `agent-2`, ...
    pub fn machines(&self) -> Vec<String> {
        let agents = (1..=self.agents).map(|i| match i {
            1 => "agent".to_string(),
            n => format!("agent-{n}"),
        });
        std::iter::once(MASTER.to_string()).chain(agents).collect()
    }
}

/// A loaded configuration and the directory its relative paths start from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub project_dir: PathBuf,
}

/// Loads `path` (which must exist), or the nearest `orchestrator.toml` in the
/// working directory or above it (as cargo finds `Cargo.toml`), or the
/// defaults; then applies the environment's overrides and validates. The
/// project directory, where `.orchestrator/` lives, is the file's directory.
pub fn load(path: Option<&Path>) -> anyhow::Result<Loaded> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let file = match path {
        Some(path) => Some(cwd.join(path)),
        None => find(&cwd),
    };
    let text = match &file {
        Some(file) => std::fs::read_to_string(file)
            .map_err(|err| Failure::Usage(format!("cannot read {}: {err}", file.display())))?,
        None => String::new(),
    };
    let origin = file
        .as_ref()
        .map_or("configuration".into(), |f| f.display().to_string());
    let mut config = parse(&text).map_err(|msg| Failure::Usage(format!("{origin}:{msg}")))?;
    if let Ok(user) = std::env::var("DOCKERHUB_USERNAME")
        && !user.is_empty()
    {
        check_namespace("DOCKERHUB_USERNAME", &user).map_err(Failure::Usage)?;
        config.registry.namespace = user;
    }
    config.validate().map_err(|invalid| {
        let place = match invalid.position_in(&text) {
            Some((line, column)) => format!("{origin}:{line}:{column}"),
            None => origin,
        };
        Failure::Usage(format!("{place}: {}", invalid.message))
    })?;
    let project_dir = file
        .as_deref()
        .and_then(Path::parent)
        .map_or(cwd.clone(), Path::to_path_buf);
    Ok(Loaded {
        config,
        project_dir,
    })
}

/// The nearest `orchestrator.toml` in `dir` or one of its parents.
pub fn find(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|dir| dir.join(DEFAULT_FILE))
        .find(|file| file.is_file())
}

/// Parses the file's text; an error reads `LINE:COLUMN: message`.
pub fn parse(text: &str) -> Result<Config, String> {
    toml::from_str(text).map_err(|err| {
        let (line, column) = err
            .span()
            .map_or((1, 1), |span| line_and_column(text, span.start));
        format!("{line}:{column}: {}", err.message())
    })
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// The bounds of every `*_timeout_secs` and of `deploy --timeout`: at least a
/// second, at most a day (a deadline that far is a typo, and a bigger one
/// would overflow the clock).
pub const TIMEOUT_SECS: RangeInclusive<u64> = 1..=86_400;

/// A value that parses but is not allowed, and the dotted key that holds it.
#[derive(Debug)]
pub struct Invalid {
    pub key: &'static str,
    pub message: String,
}

impl Invalid {
    /// Where the key's value is in the file's `text` (line, column), if the
    /// file sets it (a default or an override has no place).
    pub fn position_in(&self, text: &str) -> Option<(usize, usize)> {
        let document = toml::de::DeTable::parse(text).ok()?;
        let (section, key) = self.key.split_once('.')?;
        let toml::de::DeValue::Table(table) = document.get_ref().get(section)?.get_ref() else {
            return None;
        };
        let value = table.get(key)?;
        Some(line_and_column(text, value.span().start))
    }
}

impl Config {
    fn validate(&self) -> Result<(), Invalid> {
        let cluster = &self.cluster;
        let invalid = |key, message| Err(Invalid { key, message });
        if !(1..=9).contains(&cluster.agents) {
            return invalid(
                "cluster.agents",
                format!("cluster.agents must be 1 to 9, not {}", cluster.agents),
            );
        }
        let last_octet = cluster.master_ip.octets()[3];
        if last_octet == 0 || u16::from(last_octet) + u16::from(cluster.agents) > 254 {
            return invalid(
                "cluster.master_ip",
                format!(
                    "cluster.master_ip {} leaves no room for {} agent address(es) after it",
                    cluster.master_ip, cluster.agents
                ),
            );
        }
        if cluster.cpus == 0 {
            return invalid("cluster.cpus", "cluster.cpus must be at least 1".into());
        }
        if cluster.memory_mb < 1024 {
            return invalid(
                "cluster.memory_mb",
                format!(
                    "cluster.memory_mb must be at least 1024, not {}",
                    cluster.memory_mb
                ),
            );
        }
        if let Err(message) = check_box_name("cluster.box", &cluster.box_name) {
            return invalid("cluster.box", message);
        }
        if !cluster.k3s_version.starts_with('v') || !cluster.k3s_version.contains("+k3s") {
            return invalid(
                "cluster.k3s_version",
                format!(
                    "cluster.k3s_version {:?} is not a K3s release such as {DEFAULT_K3S_VERSION:?}",
                    cluster.k3s_version
                ),
            );
        }
        for (key, url) in [
            ("cluster.k3s_release_url", &cluster.k3s_release_url),
            ("cluster.k3s_installer_url", &cluster.k3s_installer_url),
        ] {
            if let Err(message) = check_download_url(key, url) {
                return invalid(key, message);
            }
        }
        if let Err(message) = check_registry_host("registry.server", &self.registry.server) {
            return invalid("registry.server", message);
        }
        if !self.registry.namespace.is_empty()
            && let Err(message) = check_namespace("registry.namespace", &self.registry.namespace)
        {
            return invalid("registry.namespace", message);
        }
        if !is_dns_label(&self.deploy.namespace) {
            return invalid(
                "deploy.namespace",
                format!(
                    "deploy.namespace {:?} is not a valid Kubernetes namespace (lowercase letters, digits and '-')",
                    self.deploy.namespace
                ),
            );
        }
        for (key, secs) in [
            ("cluster.ready_timeout_secs", cluster.ready_timeout_secs),
            ("cluster.step_timeout_secs", cluster.step_timeout_secs),
            ("deploy.timeout_secs", self.deploy.timeout_secs),
        ] {
            if !TIMEOUT_SECS.contains(&secs) {
                return invalid(
                    key,
                    format!(
                        "{key} must be {} to {} seconds (one day), not {secs}",
                        TIMEOUT_SECS.start(),
                        TIMEOUT_SECS.end()
                    ),
                );
            }
        }
        Ok(())
    }

    /// The private-network address of a machine, by its position in `machines()`.
    pub fn machine_ip(&self, index: usize) -> Ipv4Addr {
        let [a, b, c, d] = self.cluster.master_ip.octets();
        Ipv4Addr::new(a, b, c, d + index as u8)
    }
}

/// A registry host as Docker's reference grammar has it: a domain name or
/// IPv4 address (dot-separated alphanumeric components, '-' inside them) or a
/// bracketed IPv6 address, and an optional `:PORT`.
fn check_registry_host(key: &str, server: &str) -> Result<(), String> {
    let (host_ok, port) = match server.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((ipv6, rest)) => (
                ipv6.parse::<std::net::Ipv6Addr>().is_ok(),
                rest.strip_prefix(':')
                    .or(Some(rest).filter(|r| !r.is_empty())),
            ),
            None => (false, None),
        },
        None => {
            let (host, port) = match server.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (server, None),
            };
            let component_ok = |component: &str| {
                !component.is_empty()
                    && component
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !component.starts_with('-')
                    && !component.ends_with('-')
            };
            (host.split('.').all(component_ok), port)
        }
    };
    let port_ok = port
        .is_none_or(|port| port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok());
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(format!(
            "{key} {server:?} is not a registry host such as \"docker.io\" or \"localhost:5000\" \
             (a domain name or IP address and an optional :PORT, no scheme or path)"
        ))
    }
}

/// One path component of an image name, as Docker's reference grammar has it:
/// lowercase letters and digits, separated by one '.', one or two '_', or
/// any number of '-'.
pub fn check_namespace(key: &str, namespace: &str) -> Result<(), String> {
    let separators_ok = namespace
        .split(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        .filter(|separator| !separator.is_empty())
        .all(|separator| {
            matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-')
        });
    let ends_ok = [namespace.bytes().next(), namespace.bytes().last()]
        .iter()
        .all(|end| end.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    if separators_ok && ends_ok {
        Ok(())
    } else {
        Err(format!(
            "{key} {namespace:?} is not an image namespace such as your Docker Hub user: \
             lowercase letters and digits, with '.', '_', '__' or '-' only between them"
        ))
    }
}

/// A Vagrant box name: `ORG/NAME` as Vagrant's registry names boxes, or a
/// plain `NAME` for a box added by hand; letters, digits, '.', '_' and '-'.
fn check_box_name(key: &str, name: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split('/').collect();
    let part_ok = |part: &&str| {
        part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    if parts.len() <= 2 && parts.iter().all(part_ok) {
        Ok(())
    } else {
        Err(format!(
            "{key} {name:?} is not a Vagrant box name such as \"bento/ubuntu-24.04\" \
             (ORG/NAME, or NAME for a box added by hand: letters, digits, '.', '_', '-')"
        ))
    }
}

/// An https:// URL to download K3s from. Plain http is refused because the
/// sha256 sums the download is checked against come from the same host: over
/// http whoever alters the binary alters the sums too. The loopback is the
/// exception, for a mirror on this machine (the tests' and the VM tier's
/// stand-in for GitHub serve plain http on 127.0.0.1).
fn check_download_url(key: &str, url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|err| {
        format!("{key} {url:?} is not a URL such as \"https://get.k3s.io\" ({err})")
    })?;
    let loopback = parsed.host_str().is_some_and(|host| {
        host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "{key} {url:?} must be https://: the release's sha256 sums come from the same host, \
             so over plain http they prove nothing (http is allowed for a loopback host only, \
             such as a mirror on 127.0.0.1)"
        )),
        _ => Err(format!("{key} {url:?} is not an https:// URL")),
    }
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_every_default() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn shipped_file_matches_the_defaults() {
        let shipped = include_str!("../orchestrator.toml");
        assert_eq!(parse(shipped).unwrap(), Config::default());
    }

    #[test]
    fn values_override_defaults() {
        let config = parse("[cluster]\nagents = 2\nprovider = \"libvirt\"\n").unwrap();
        assert_eq!(config.cluster.agents, 2);
        assert_eq!(config.cluster.provider, Provider::Libvirt);
        assert_eq!(config.cluster.machines(), ["master", "agent", "agent-2"]);
        assert_eq!(config.machine_ip(2), Ipv4Addr::new(192, 168, 56, 12));
        assert_eq!(config.deploy, DeployConfig::default());
    }

    #[test]
    fn syntax_error_names_line_and_column() {
        let err = parse("[cluster]\nagents = = 2\n").unwrap_err();
        assert!(err.starts_with("2:10:"), "{err}");
    }

    #[test]
    fn unknown_key_is_an_error_with_its_place() {
        let err = parse("[cluster]\nagents = 1\nagnets = 2\n").unwrap_err();
        assert!(err.starts_with("3:1:"), "{err}");
        assert!(err.contains("agnets"), "{err}");
    }

    #[test]
    fn wrong_type_is_an_error() {
        let err = parse("[cluster]\nmaster_ip = \"not an ip\"\n").unwrap_err();
        assert!(err.starts_with("2:13:"), "{err}");
    }

    #[test]
    fn the_nearest_file_upward_is_found() {
        let root = tempfile::tempdir().unwrap();
        let sub = root.path().join("manifests/deep");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(find(&sub), None);
        std::fs::write(root.path().join(DEFAULT_FILE), "").unwrap();
        assert_eq!(find(&sub), Some(root.path().join(DEFAULT_FILE)));
        std::fs::write(sub.join(DEFAULT_FILE), "").unwrap();
        assert_eq!(find(&sub), Some(sub.join(DEFAULT_FILE)));
    }

    #[test]
    fn validation_rejects_impossible_values() {
        let mut config = Config::default();
        config.cluster.agents = 0;
        assert!(
            config
                .validate()
                .unwrap_err()
                .message
                .contains("cluster.agents")
        );
        let mut config = Config::default();
        config.deploy.namespace = "My_Namespace".into();
        assert!(
            config
                .validate()
                .unwrap_err()
                .message
                .contains("deploy.namespace")
        );
        let mut config = Config::default();
        config.cluster.master_ip = Ipv4Addr::new(10, 0, 0, 254);
        assert!(config.validate().unwrap_err().message.contains("master_ip"));
        let mut config = Config::default();
        config.cluster.k3s_release_url = "github.com/k3s-io/k3s/releases/download".into();
        assert!(
            config
                .validate()
                .unwrap_err()
                .message
                .contains("cluster.k3s_release_url")
        );
    }

    /// The error `validate` gives for the defaults changed by `change`.
    fn invalid(change: impl FnOnce(&mut Config)) -> String {
        let mut config = Config::default();
        change(&mut config);
        config.validate().unwrap_err().message
    }

    fn valid(change: impl FnOnce(&mut Config)) {
        let mut config = Config::default();
        change(&mut config);
        if let Err(err) = config.validate() {
            panic!("{}", err.message);
        }
    }

    #[test]
    fn a_bad_value_is_placed_at_its_line_and_column() {
        let text = "[cluster]\nagents = 2\n\n[deploy]\ntimeout_secs =   0 # none\n";
        let invalid = parse(text).unwrap().validate().unwrap_err();
        assert_eq!(invalid.key, "deploy.timeout_secs");
        assert_eq!(invalid.position_in(text), Some((5, 18)));
        let dotted = "cluster.box = \"a/b/c\"\n";
        let invalid = parse(dotted).unwrap().validate().unwrap_err();
        assert_eq!(invalid.position_in(dotted), Some((1, 15)));
        // A default or an override is in no file.
        assert_eq!(invalid.position_in(""), None);
    }

    #[test]
    fn every_timeout_is_one_second_to_one_day() {
        let err = invalid(|c| c.deploy.timeout_secs = 0);
        assert!(
            err.contains("deploy.timeout_secs must be 1 to 86400"),
            "{err}"
        );
        let err = invalid(|c| c.cluster.ready_timeout_secs = u64::MAX);
        assert!(
            err.contains("cluster.ready_timeout_secs must be 1 to 86400"),
            "{err}"
        );
        let err = invalid(|c| c.cluster.step_timeout_secs = 86_401);
        assert!(err.contains("cluster.step_timeout_secs"), "{err}");
        valid(|c| c.deploy.timeout_secs = 86_400);
    }

    /// `set` with each of `good` validates, and with each of `bad` fails
    /// naming `key` and the value.
    fn check_values(key: &str, set: fn(&mut Config, &str), good: &[&str], bad: &[&str]) {
        for value in good {
            valid(|c| set(c, value));
        }
        for value in bad {
            let err = invalid(|c| set(c, value));
            assert!(err.contains(&format!("{key} {value:?}")), "{err}");
        }
    }

    #[test]
    fn the_registry_server_is_a_host_and_optional_port() {
        check_values(
            "registry.server",
            |c, v| c.registry.server = v.into(),
            &[
                "docker.io",
                "localhost:5000",
                "registry-1.example.com",
                "[::1]:5000",
                "10.0.0.2:443",
            ],
            &[
                "",
                "https://docker.io",
                "docker.io/",
                "-docker.io",
                "docker..io",
                "host:port",
                "host:",
                "my_registry",
            ],
        );
    }

    #[test]
    fn the_registry_namespace_is_an_image_path_component() {
        check_values(
            "registry.namespace",
            |c, v| c.registry.namespace = v.into(),
            &["", "me", "my.org", "my_org", "my__org", "my--org", "a1"],
            &[
                "Me", "me/", "-me", "me-", "me_", "m___e", "my org", "org/team",
            ],
        );
    }

    #[test]
    fn the_box_is_a_vagrant_box_name() {
        check_values(
            "cluster.box",
            |c, v| c.cluster.box_name = v.into(),
            &[
                "bento/ubuntu-24.04",
                "generic/debian12",
                "local-box",
                "my_box.v2",
            ],
            &[
                "",
                "bento/",
                "/ubuntu",
                "a/b/c",
                "bento/ubuntu 24.04",
                "https://example.com/x.box",
            ],
        );
    }

    #[test]
    fn k3s_urls_are_https_but_for_the_loopback() {
        let err = invalid(|c| {
            c.cluster.k3s_release_url = "http://mirror.example.com/k3s".into();
        });
        assert!(err.contains("cluster.k3s_release_url"), "{err}");
        assert!(err.contains("https://"), "{err}");
        let err = invalid(|c| c.cluster.k3s_installer_url = "http://get.k3s.io".into());
        assert!(err.contains("cluster.k3s_installer_url"), "{err}");
        for url in [
            "http://127.0.0.1/releases",
            "http://127.0.0.1:8080/",
            "http://localhost:1/x",
            "http://[::1]:80/",
        ] {
            valid(|c| c.cluster.k3s_release_url = url.into());
        }
        let err = invalid(|c| c.cluster.k3s_installer_url = "ftp://get.k3s.io".into());
        assert!(err.contains("cluster.k3s_installer_url"), "{err}");
    }
}
