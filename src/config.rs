//! `orchestrator.toml`: every field has a default, unknown keys are errors, and
//! a bad file is reported with its line and column before anything runs.

use std::net::Ipv4Addr;
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

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            agents: 1,
            master_ip: Ipv4Addr::new(192, 168, 56, 10),
            box_name: "bento/ubuntu-24.04".into(),
            provider: Provider::Virtualbox,
            cpus: 2,
            memory_mb: 2048,
            k3s_version: "v1.31.6+k3s1".into(),
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

impl ClusterConfig {
    /// The Vagrant machine names: `master`, `agent`, `agent-2`, ...
    pub fn machines(&self) -> Vec<String> {
        let agents = (1..=self.agents).map(|i| match i {
            1 => "agent".to_string(),
            n => format!("agent-{n}"),
        });
        std::iter::once("master".to_string())
            .chain(agents)
            .collect()
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
    let mut config = match &file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|err| Failure::Usage(format!("cannot read {}: {err}", file.display())))?;
            parse(&text).map_err(|msg| Failure::Usage(format!("{}:{msg}", file.display())))?
        }
        None => Config::default(),
    };
    if let Ok(user) = std::env::var("DOCKERHUB_USERNAME")
        && !user.is_empty()
    {
        config.registry.namespace = user;
    }
    config.validate().map_err(|msg| {
        let origin = file
            .as_ref()
            .map_or("configuration".into(), |f| f.display().to_string());
        Failure::Usage(format!("{origin}: {msg}"))
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

impl Config {
    fn validate(&self) -> Result<(), String> {
        let cluster = &self.cluster;
        if !(1..=9).contains(&cluster.agents) {
            return Err(format!(
                "cluster.agents must be 1 to 9, not {}",
                cluster.agents
            ));
        }
        let last_octet = cluster.master_ip.octets()[3];
        if last_octet == 0 || u16::from(last_octet) + u16::from(cluster.agents) > 254 {
            return Err(format!(
                "cluster.master_ip {} leaves no room for {} agent address(es) after it",
                cluster.master_ip, cluster.agents
            ));
        }
        if cluster.cpus == 0 || cluster.memory_mb < 1024 {
            return Err(
                "cluster.cpus must be at least 1 and cluster.memory_mb at least 1024".into(),
            );
        }
        if !cluster.k3s_version.starts_with('v') || !cluster.k3s_version.contains("+k3s") {
            return Err(format!(
                "cluster.k3s_version {:?} is not a K3s release such as \"v1.31.6+k3s1\"",
                cluster.k3s_version
            ));
        }
        for (key, url) in [
            ("k3s_release_url", &cluster.k3s_release_url),
            ("k3s_installer_url", &cluster.k3s_installer_url),
        ] {
            if !url.starts_with("https://") && !url.starts_with("http://") {
                return Err(format!(
                    "cluster.{key} {url:?} is not an http:// or https:// URL"
                ));
            }
        }
        if !is_dns_label(&self.deploy.namespace) {
            return Err(format!(
                "deploy.namespace {:?} is not a valid Kubernetes namespace (lowercase letters, digits and '-')",
                self.deploy.namespace
            ));
        }
        if cluster.ready_timeout_secs == 0
            || cluster.step_timeout_secs == 0
            || self.deploy.timeout_secs == 0
        {
            return Err("timeouts must be at least one second".into());
        }
        Ok(())
    }

    /// The private-network address of a machine, by its position in `machines()`.
    pub fn machine_ip(&self, index: usize) -> Ipv4Addr {
        let [a, b, c, d] = self.cluster.master_ip.octets();
        Ipv4Addr::new(a, b, c, d + index as u8)
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
        assert!(config.validate().unwrap_err().contains("cluster.agents"));
        let mut config = Config::default();
        config.deploy.namespace = "My_Namespace".into();
        assert!(config.validate().unwrap_err().contains("deploy.namespace"));
        let mut config = Config::default();
        config.cluster.master_ip = Ipv4Addr::new(10, 0, 0, 254);
        assert!(config.validate().unwrap_err().contains("master_ip"));
        let mut config = Config::default();
        config.cluster.k3s_release_url = "github.com/k3s-io/k3s/releases/download".into();
        assert!(
            config
                .validate()
                .unwrap_err()
                .contains("cluster.k3s_release_url")
        );
    }
}
