//! The rules: pure functions from [`Facts`] to [`Finding`]s. Each says what it
//! saw and, unless all is well, the one thing to do about it.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::Value;

use super::{Answer, Facts, Finding, Scope, Subject};
use crate::config::{Config, Provider};
use crate::prereq::Tool;

/// Everything `scope` needs, judged, in the order a user fixes things.
pub fn evaluate(config: &Config, scope: Scope, facts: &Facts) -> Vec<Finding> {
    let mut findings = Vec::new();
    if scope.vms() {
        findings.push(host(config, facts));
        findings.extend(tool(facts, Tool::Vagrant, |at| vagrant(at, facts)));
        findings.extend(tool(facts, Tool::VirtualBox, |at| virtualbox(at, facts)));
        findings.extend(tool(facts, Tool::Libvirt, |at| libvirt(at, facts)));
        findings.extend(libvirt_plugin(facts));
        findings.extend(vagrant_box(config, facts));
        if config.cluster.provider == Provider::Virtualbox {
            findings.push(host_only_network(config, facts));
            findings.extend(kvm(facts));
        }
        findings.extend(memory(config, facts));
    }
    findings.extend(tool(facts, Tool::Docker, |at| {
        Finding::ok(Subject::Tool(Tool::Docker), at.display().to_string())
    }));
    findings.extend(docker_daemon(facts));
    findings.extend(buildx(facts));
    findings.extend(Builder::of(facts).map(|builder| builder.finding()));
    findings.extend(docker_login(config, facts));
    findings.extend(tool(facts, Tool::Kubectl, |at| {
        Finding::ok(Subject::Tool(Tool::Kubectl), at.display().to_string())
    }));
    findings
}

/// A dotted version such as Vagrant's `2.4.3` or VirtualBox's `7.1.4r165100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// The first word of `text` that reads `X.Y` or `X.Y.Z` (after an optional `v`).
    pub fn find(text: &str) -> Option<Version> {
        text.split(|c: char| c.is_whitespace() || matches!(c, ',' | '(' | ')'))
            .find_map(|word| {
                let mut parts = word.trim_start_matches('v').split('.').map(|part| {
                    let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse::<u32>().ok()
                });
                let major = parts.next()??;
                let minor = parts.next()??;
                let patch = parts.next().flatten().unwrap_or(0);
                Some(Version(major, minor, patch))
            })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The first Vagrant release that drives each VirtualBox `major.minor`
/// (Vagrant's CHANGELOG), newest first. Older Vagrant refuses newer VirtualBox.
const VAGRANT_FOR_VIRTUALBOX: &[((u32, u32), Version)] = &[
    ((7, 2), Version(2, 4, 9)),
    ((7, 1), Version(2, 4, 2)),
    ((7, 0), Version(2, 3, 2)),
];

/// Vagrant knows box architectures from this release on.
const VAGRANT_WITH_ARCHITECTURES: Version = Version(2, 4, 0);

const VAGRANT_INSTALL: &str = "https://developer.hashicorp.com/vagrant/install";

/// VirtualBox's allowed host-only range when `networks.conf` does not exist.
const DEFAULT_HOST_ONLY: Range = Range(Ipv4Addr::new(192, 168, 56, 0), 21);

fn tool(facts: &Facts, tool: Tool, judge: impl FnOnce(&Path) -> Finding) -> Option<Finding> {
    let looked_up = facts.tools.iter().find(|c| c.tool == tool)?;
    Some(match &looked_up.path {
        Some(path) => judge(path),
        None => {
            let message = format!("`{}` not found on PATH: {}", tool.program(), tool.purpose());
            match tool {
                Tool::Kubectl => Finding::warn(Subject::Missing(tool), message, tool.install()),
                _ => Finding::fail(Subject::Missing(tool), message, tool.install()),
            }
        }
    })
}

fn version_of(answer: Option<&Answer>) -> Option<Version> {
    match answer? {
        Answer::Ok(text) => Version::find(text),
        _ => None,
    }
}

fn host(config: &Config, facts: &Facts) -> Finding {
    let host = format!("{} {}", facts.os, facts.arch);
    if !facts.wsl {
        return Finding::ok(Subject::Host, host);
    }
    match config.cluster.provider {
        Provider::Virtualbox => Finding::fail(
            Subject::Host,
            format!(
                "{host} inside WSL2: WSL2 cannot reach VirtualBox's host-only addresses ({} ...), \
                 so `create` would wait for the nodes until it times out",
                config.cluster.master_ip
            ),
            "use a Linux or macOS host; on Windows, run orchestrator on Windows itself \
             (Vagrant and VirtualBox for Windows; not tested) rather than inside WSL2",
        ),
        Provider::Libvirt => Finding::warn(
            Subject::Host,
            format!("{host} inside WSL2: libvirt VMs there need nested virtualization; not tested"),
            "if the VMs do not boot, use a Linux or macOS host",
        ),
    }
}

fn vagrant(at: &Path, facts: &Facts) -> Finding {
    let check = Subject::Tool(Tool::Vagrant);
    let at = at.display();
    let Some(answer) = &facts.vagrant_version else {
        return Finding::ok(check, at.to_string());
    };
    match (answer, version_of(Some(answer))) {
        (Answer::Ok(_), Some(version)) if version < VAGRANT_WITH_ARCHITECTURES => Finding::warn(
            check,
            format!(
                "{version} ({at}): before {VAGRANT_WITH_ARCHITECTURES} Vagrant knows no box \
                 architectures and may download a box for another CPU than this {} host",
                facts.arch
            ),
            format!("upgrade Vagrant to {VAGRANT_WITH_ARCHITECTURES} or later: {VAGRANT_INSTALL}"),
        ),
        (Answer::Ok(_), Some(version)) => Finding::ok(check, format!("{version} ({at})")),
        _ => Finding::fail(
            check,
            format!("`vagrant --version` failed ({at}): {}", answer.first_line()),
            format!(
                "run `vagrant --version` to see the whole error; reinstalling Vagrant \
                 usually repairs it: {VAGRANT_INSTALL}"
            ),
        ),
    }
}

fn virtualbox(at: &Path, facts: &Facts) -> Finding {
    let check = Subject::Tool(Tool::VirtualBox);
    let at = at.display();
    let Some(answer) = &facts.provider_version else {
        return Finding::ok(check, at.to_string());
    };
    let text = answer.text().to_lowercase();
    // Vagrant's own reading of `VBoxManage --version` looks for these warnings.
    if text.contains("vboxdrv kernel module is not loaded")
        || text.contains("kernel modules are not loaded")
    {
        return Finding::fail(
            check,
            format!("VirtualBox's kernel module (vboxdrv) is not loaded ({at})"),
            "`sudo /sbin/vboxconfig` builds and loads it (install your kernel's headers first: \
             `sudo apt install linux-headers-$(uname -r)`); with Secure Boot on, the module must \
             be signed or Secure Boot turned off",
        );
    }
    if text.contains("please install") {
        return Finding::fail(
            check,
            format!(
                "VirtualBox's installation is incomplete ({at}): {}",
                answer.first_line()
            ),
            "reinstall VirtualBox: https://www.virtualbox.org/wiki/Downloads",
        );
    }
    let Some(vbox) = version_of(Some(answer)) else {
        return Finding::fail(
            check,
            format!(
                "`VBoxManage --version` failed ({at}): {}",
                answer.first_line()
            ),
            "run `VBoxManage --version` to see the whole error; reinstall VirtualBox if it persists",
        );
    };
    if facts.os == "macos" && facts.arch == "arm64" && vbox < Version(7, 1, 0) {
        return Finding::fail(
            check,
            format!("{vbox} ({at}) does not run VMs on Apple Silicon"),
            "install VirtualBox 7.1 or later: https://www.virtualbox.org/wiki/Downloads",
        );
    }
    let vagrant = version_of(facts.vagrant_version.as_ref());
    let newest_known = VAGRANT_FOR_VIRTUALBOX[0].0;
    if (vbox.0, vbox.1) > newest_known {
        return Finding::warn(
            check,
            format!(
                "{vbox} ({at}) is newer than the versions known here (up to {}.{}): \
                 Vagrant may not drive it yet",
                newest_known.0, newest_known.1
            ),
            format!(
                "if `vagrant up` says this VirtualBox version is not supported, upgrade Vagrant \
                 ({VAGRANT_INSTALL}) or install VirtualBox {}.{}",
                newest_known.0, newest_known.1
            ),
        );
    }
    let needed = VAGRANT_FOR_VIRTUALBOX
        .iter()
        .find(|(minor, _)| *minor == (vbox.0, vbox.1))
        .map(|(_, vagrant)| *vagrant);
    match (needed, vagrant) {
        (Some(needed), Some(vagrant)) if vagrant < needed => {
            let supported = VAGRANT_FOR_VIRTUALBOX
                .iter()
                .find(|(_, first)| vagrant >= *first)
                .map_or("6.1".to_string(), |((major, minor), _)| {
                    format!("{major}.{minor}")
                });
            Finding::fail(
                check,
                format!(
                    "{vbox} ({at}) needs Vagrant {needed} or later, and this is Vagrant {vagrant}"
                ),
                format!(
                    "upgrade Vagrant to {needed} or later ({VAGRANT_INSTALL}), \
                     or install VirtualBox {supported}, the newest Vagrant {vagrant} drives"
                ),
            )
        }
        _ => Finding::ok(check, format!("{vbox} ({at})")),
    }
}

fn libvirt(at: &Path, facts: &Facts) -> Finding {
    let check = Subject::Tool(Tool::Libvirt);
    let at = at.display();
    match &facts.provider_version {
        None => Finding::ok(check, at.to_string()),
        Some(answer @ Answer::Ok(_)) => match version_of(Some(answer)) {
            Some(version) => Finding::ok(check, format!("{version} ({at})")),
            None => Finding::ok(check, format!("{} ({at})", answer.first_line())),
        },
        Some(answer) => Finding::fail(
            check,
            format!("`virsh --version` failed ({at}): {}", answer.first_line()),
            "reinstall the libvirt client: `sudo apt install libvirt-clients libvirt-daemon-system`",
        ),
    }
}

fn libvirt_plugin(facts: &Facts) -> Option<Finding> {
    let answer = facts.vagrant_plugins.as_ref()?;
    let check = Subject::LibvirtPlugin;
    let listed = answer
        .text()
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("vagrant-libvirt "));
    Some(match (answer, listed) {
        (Answer::Ok(_), Some(line)) => Finding::ok(check, line.to_string()),
        (Answer::Ok(_), None) => Finding::fail(
            check,
            "the vagrant-libvirt plugin is not installed: Vagrant cannot drive libvirt without it",
            "`vagrant plugin install vagrant-libvirt` (Debian/Ubuntu: `sudo apt install libvirt-dev` first)",
        ),
        _ => Finding::fail(
            check,
            format!("`vagrant plugin list` failed: {}", answer.first_line()),
            "`vagrant plugin repair`, or `vagrant plugin expunge --reinstall`",
        ),
    })
}

/// One line of `vagrant box list`: `NAME (PROVIDER, VERSION[, (ARCH, ...)])`.
#[derive(Debug, PartialEq, Eq)]
pub struct ListedBox<'a> {
    pub name: &'a str,
    pub provider: &'a str,
    pub version: &'a str,
    /// Empty before Vagrant 2.4, which knows no architectures.
    pub architectures: Vec<&'a str>,
}

pub fn parse_box_list(text: &str) -> Vec<ListedBox<'_>> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(" (")?;
            let rest = rest.trim_end().strip_suffix(')')?;
            let (meta, architectures) = match rest.split_once(", (") {
                Some((meta, archs)) => (
                    meta,
                    archs
                        .trim_end_matches(')')
                        .split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .collect(),
                ),
                None => (rest, Vec::new()),
            };
            let mut meta = meta.split(',').map(str::trim);
            Some(ListedBox {
                name: name.trim(),
                provider: meta.next()?,
                version: meta.next().unwrap_or(""),
                architectures,
            })
        })
        .collect()
}

fn vagrant_box(config: &Config, facts: &Facts) -> Option<Finding> {
    let answer = facts.vagrant_boxes.as_ref()?;
    let check = Subject::Box;
    let (name, provider, arch) = (
        config.cluster.box_name.as_str(),
        config.cluster.provider.as_str(),
        facts.arch.as_str(),
    );
    let Answer::Ok(text) = answer else {
        return Some(Finding::warn(
            check,
            format!("`vagrant box list` failed: {}", answer.first_line()),
            "run `vagrant box list` to see the whole error",
        ));
    };
    let installed: Vec<ListedBox> = parse_box_list(text)
        .into_iter()
        .filter(|b| b.name == name && b.provider == provider)
        .collect();
    let fits = |b: &&ListedBox| {
        b.architectures.is_empty()
            || b.architectures
                .iter()
                .any(|a| *a == arch || *a == "unknown")
    };
    Some(match installed.iter().find(fits) {
        Some(found) => Finding::ok(
            check,
            format!("{name} {} for {provider} on {arch}", found.version),
        ),
        None if installed.is_empty() => Finding::ok(
            check,
            format!(
                "{name} for {provider} on {arch} is not downloaded yet: `create` downloads it \
                 once, before the VMs boot"
            ),
        ),
        None => {
            let others: Vec<&str> = installed
                .iter()
                .flat_map(|b| b.architectures.iter().copied())
                .collect();
            Finding::warn(
                check,
                format!(
                    "{name} for {provider} is installed for {} only, and this host is {arch}: \
                     each VM's `vagrant up` would download the {arch} one at the same time",
                    others.join(", ")
                ),
                format!(
                    "download it once first: `vagrant box add --provider {provider} --architecture {arch} {name}`"
                ),
            )
        }
    })
}

/// An IPv4 network: address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range(pub Ipv4Addr, pub u8);

impl Range {
    fn contains(self, address: Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.1)).unwrap_or(0);
        u32::from(address) & mask == u32::from(self.0) & mask
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0, self.1)
    }
}

/// The IPv4 ranges of VirtualBox's `networks.conf`: lines `* RANGE [RANGE ...]`.
pub fn parse_networks_conf(text: &str) -> Vec<Range> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix('*'))
        .flat_map(str::split_whitespace)
        .filter_map(|word| {
            let (address, prefix) = word.split_once('/')?;
            let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
            Some(Range(address.parse().ok()?, prefix))
        })
        .collect()
}

fn host_only_network(config: &Config, facts: &Facts) -> Finding {
    let check = Subject::HostOnlyNetwork;
    let (path, text) = &facts.networks_conf;
    let (ranges, source) = match text {
        Some(text) => (
            parse_networks_conf(text),
            format!("from {}", path.display()),
        ),
        None => (
            vec![DEFAULT_HOST_ONLY],
            format!("VirtualBox's default: there is no {}", path.display()),
        ),
    };
    let allowed = match ranges.is_empty() {
        true => "none".to_string(),
        false => ranges
            .iter()
            .map(Range::to_string)
            .collect::<Vec<_>>()
            .join(" "),
    };
    let addresses: Vec<Ipv4Addr> = (0..=usize::from(config.cluster.agents))
        .map(|i| config.machine_ip(i))
        .collect();
    let outside: Vec<Ipv4Addr> = addresses
        .iter()
        .copied()
        .filter(|a| !ranges.iter().any(|r| r.contains(*a)))
        .collect();
    if outside.is_empty() {
        return Finding::ok(
            check,
            format!(
                "{} to {} inside {allowed} ({source})",
                addresses[0],
                addresses[addresses.len() - 1]
            ),
        );
    }
    let mut networks: Vec<String> = outside
        .iter()
        .map(|a| {
            let [x, y, z, _] = a.octets();
            format!("{x}.{y}.{z}.0/24")
        })
        .collect();
    networks.dedup();
    // Creating the file replaces VirtualBox's default range: the new line keeps it.
    let line = match text {
        Some(_) => format!("* {}", networks.join(" ")),
        None => format!("* {DEFAULT_HOST_ONLY} {}", networks.join(" ")),
    };
    let file = path.display();
    let dir = path.parent().unwrap_or(path).display();
    let listed: Vec<String> = outside.iter().map(Ipv4Addr::to_string).collect();
    let mut fix = format!(
        "add the line `{line}` to {file}: `sudo mkdir -p {dir} && echo '{line}' | sudo tee -a {file}`"
    );
    if !ranges.is_empty() {
        fix.push_str(&format!("; or set cluster.master_ip inside {allowed}"));
    }
    Finding::fail(
        check,
        format!(
            "{} outside the host-only ranges VirtualBox allows ({allowed}, {source}): \
             `vagrant up` would stop with \"The IP address configured for the host-only network \
             is not within the allowed ranges\"",
            listed.join(", ")
        ),
        fix,
    )
}

fn kvm(facts: &Facts) -> Option<Finding> {
    let modules = facts.modules.as_deref()?;
    let loaded: Vec<&str> = modules
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|module| matches!(*module, "kvm" | "kvm_intel" | "kvm_amd"))
        .collect();
    if loaded.is_empty() {
        return Some(Finding::ok(Subject::Kvm, "no KVM module loaded"));
    }
    // The vendor module first: it uses `kvm`.
    let mut unload = loaded.clone();
    unload.sort_by_key(|module| *module == "kvm");
    Some(Finding::warn(
        Subject::Kvm,
        format!(
            "{} loaded: VirtualBox cannot boot a VM while KVM holds the CPU's virtualization \
             (VERR_VMX_IN_VMX_ROOT_MODE, or VERR_SVM_IN_USE on AMD; Linux 6.12 and later take it \
             as soon as the module loads)",
            loaded.join(", ")
        ),
        format!(
            "stop any KVM/libvirt VM, then `sudo modprobe -r {}`; to keep them off, boot with \
             kvm.enable_virt_at_load=0 or blacklist them in /etc/modprobe.d/",
            unload.join(" ")
        ),
    ))
}

/// A `/proc/meminfo` field in MiB.
fn meminfo_mib(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        let kib: u64 = value.split_whitespace().next()?.parse().ok()?;
        Some(kib / 1024)
    })
}

fn memory(config: &Config, facts: &Facts) -> Option<Finding> {
    let text = facts.meminfo.as_deref()?;
    let total = meminfo_mib(text, "MemTotal")?;
    let available = meminfo_mib(text, "MemAvailable").or_else(|| meminfo_mib(text, "MemFree"))?;
    let cluster = &config.cluster;
    let vms = 1 + u64::from(cluster.agents);
    let needed = vms * u64::from(cluster.memory_mb);
    let what = format!("{vms} VMs × {} MiB = {needed} MiB", cluster.memory_mb);
    let lower = "lower cluster.memory_mb (at least 1024) or cluster.agents in orchestrator.toml";
    Some(if total < needed {
        Finding::fail(
            Subject::Memory,
            format!("{what}, but this host has {total} MiB in all"),
            lower,
        )
    } else if available < needed {
        Finding::warn(
            Subject::Memory,
            format!(
                "{what}, but {available} MiB are available now (running VMs not counted): \
                 the host may swap or a VM fail to boot"
            ),
            format!("close programs or other VMs, or {lower}"),
        )
    } else {
        Finding::ok(
            Subject::Memory,
            format!("{what}; {available} MiB available"),
        )
    })
}

const START_DOCKER: &str =
    "start it: `sudo systemctl start docker` (Linux), or open Docker Desktop (macOS, Windows)";

fn docker_daemon(facts: &Facts) -> Option<Finding> {
    let answer = facts.docker_server.as_ref()?;
    let check = Subject::DockerDaemon;
    Some(match answer {
        Answer::Ok(version) => match version.trim() {
            "" => Finding::ok(check, "answers"),
            version => Finding::ok(check, format!("answers (Docker Engine {version})")),
        },
        Answer::TimedOut(limit) => Finding::fail(
            check,
            format!("does not answer (nothing within {limit:?})"),
            "restart it: `sudo systemctl restart docker` (Linux), or quit and reopen Docker Desktop",
        ),
        Answer::Failed(text) if text.to_lowercase().contains("permission denied") => Finding::fail(
            check,
            format!("no permission to use its socket: {}", answer.first_line()),
            "join the `docker` group: `sudo usermod -aG docker $USER`, then log out and in \
                 again (or run `newgrp docker`)",
        ),
        Answer::Failed(_) => Finding::fail(
            check,
            format!("not running or not reachable: {}", answer.first_line()),
            START_DOCKER,
        ),
    })
}

fn buildx(facts: &Facts) -> Option<Finding> {
    let answer = facts.buildx.as_ref()?;
    Some(match answer {
        Answer::Ok(_) => Finding::ok(
            Subject::Buildx,
            version_of(Some(answer)).map_or_else(|| answer.first_line(), |v| v.to_string()),
        ),
        _ => Finding::fail(
            Subject::Buildx,
            format!("the buildx plugin is missing: {}", answer.first_line()),
            "install it: Debian/Ubuntu `sudo apt install docker-buildx` (from Docker's own \
             repository: `docker-buildx-plugin`); Docker Desktop includes it",
        ),
    })
}

/// The buildx builder the images are built on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Builder {
    /// `docker`, `docker-container`, `kubernetes`, `remote`.
    pub driver: String,
    /// Whether it can build an image for several platforms at once.
    pub multi_platform: bool,
}

/// How to get a builder that holds several platforms, for a cluster that mixes CPUs.
pub const MULTI_PLATFORM_FIX: &str = "create a builder that can: `docker buildx create --name multi \
     --driver docker-container --use` (BuildKit in a container), or turn on Docker's containerd \
     image store (Docker Desktop: Settings > General > \"Use containerd for pulling and storing \
     images\"; Docker Engine: `\"features\": {\"containerd-snapshotter\": true}` in \
     /etc/docker/daemon.json, then restart docker)";

impl Builder {
    /// From `docker buildx inspect` (its `Driver:` line) and the daemon's
    /// image store: the `docker` driver, a default Docker Engine's, builds one
    /// platform at a time unless the daemon keeps its images in containerd
    /// ("Multi-platform build is not supported for the docker driver").
    pub fn of(facts: &Facts) -> Option<Builder> {
        let Some(Answer::Ok(inspect)) = &facts.builder else {
            return None;
        };
        let driver = inspect
            .lines()
            .find_map(|line| line.trim().strip_prefix("Driver:"))?
            .trim()
            .to_string();
        let containerd_store = matches!(&facts.image_store, Some(Answer::Ok(status))
            if status.contains("io.containerd.snapshotter"));
        Some(Builder {
            multi_platform: driver != "docker" || containerd_store,
            driver,
        })
    }

    fn finding(&self) -> Finding {
        let what = match self.multi_platform {
            true => "builds several platforms at once",
            false => {
                "builds one platform at a time: enough unless the nodes mix CPUs \
                 (`deploy` says how to get one that builds both)"
            }
        };
        Finding::ok(Subject::Builder, format!("{} driver, {what}", self.driver))
    }
}

/// Whether docker has credentials for the registry: in its config file, or
/// through a credential store it will ask, or the registry needs none.
fn docker_login(config: &Config, facts: &Facts) -> Option<Finding> {
    let (path, text) = facts.docker_config.as_ref()?;
    let registry = &config.registry;
    let json: Value = text
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    let keys: &[&str] = if registry.server == "docker.io" {
        &[
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            "registry-1.docker.io",
        ]
    } else {
        &[registry.server.as_str()]
    };
    let listed = |section: &str| {
        json.get(section)
            .and_then(Value::as_object)
            .is_some_and(|map| map.keys().any(|k| keys.contains(&k.as_str())))
    };
    let store = json.get("credsStore").and_then(Value::as_str);
    Some(if listed("auths") {
        Finding::ok(
            Subject::DockerLogin,
            format!("credentials for {} in {}", registry.server, path.display()),
        )
    } else if listed("credHelpers") || store.is_some() {
        Finding::ok(
            Subject::DockerLogin,
            format!(
                "{} credentials kept by a credential helper",
                registry.server
            ),
        )
    } else if facts.registry_status == Some(200) {
        Finding::ok(
            Subject::DockerLogin,
            format!(
                "{} needs no login (it answers GET /v2/ without credentials)",
                registry.server
            ),
        )
    } else {
        let user = match registry.namespace.as_str() {
            "" => String::new(),
            user => format!(" -u {user}"),
        };
        Finding::fail(
            Subject::DockerLogin,
            format!("docker is not logged in to {}", registry.server),
            format!("run `docker login{user}` (or deploy with --skip-push)"),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::preflight::Level;
    use crate::prereq;

    fn found(tool: Tool) -> prereq::Lookup {
        prereq::Lookup {
            tool,
            path: Some(PathBuf::from("/usr/bin").join(tool.program())),
        }
    }

    /// A Linux amd64 host with vagrant and VirtualBox answering these versions.
    fn vm_host(vagrant: &str, vbox: &str) -> Facts {
        Facts {
            os: "linux".into(),
            arch: "amd64".into(),
            tools: vec![found(Tool::Vagrant), found(Tool::VirtualBox)],
            vagrant_version: Some(Answer::Ok(format!("Vagrant {vagrant}\n"))),
            provider_version: Some(Answer::Ok(format!("{vbox}\n"))),
            networks_conf: ("/etc/vbox/networks.conf".into(), None),
            ..Facts::default()
        }
    }

    fn the(findings: &[Finding], check: Subject) -> &Finding {
        findings
            .iter()
            .find(|f| f.check == check)
            .unwrap_or_else(|| panic!("no {} finding in {findings:#?}", check.name()))
    }

    fn judged(config: &Config, facts: &Facts, check: Subject) -> Finding {
        the(&evaluate(config, Scope::Doctor, facts), check).clone()
    }

    #[test]
    fn versions_are_read_from_what_the_tools_print() {
        assert_eq!(Version::find("Vagrant 2.4.3\n"), Some(Version(2, 4, 3)));
        assert_eq!(Version::find("7.1.4r165100\n"), Some(Version(7, 1, 4)));
        assert_eq!(
            Version::find("7.0.20_Ubuntur163906"),
            Some(Version(7, 0, 20))
        );
        assert_eq!(
            Version::find("github.com/docker/buildx v0.17.1 257815a"),
            Some(Version(0, 17, 1))
        );
        assert_eq!(Version::find("10.0.0"), Some(Version(10, 0, 0)));
        assert_eq!(Version::find("no version here"), None);
    }

    #[test]
    fn virtualbox_needs_a_vagrant_that_knows_it() {
        let config = Config::default();
        let vbox = Subject::Tool(Tool::VirtualBox);
        for (vagrant, virtualbox, level) in [
            ("2.4.1", "7.1.4r165100", Level::Fail),
            ("2.4.2", "7.1.4r165100", Level::Ok),
            ("2.4.8", "7.2.0r170228", Level::Fail),
            ("2.4.9", "7.2.0r170228", Level::Ok),
            ("2.3.1", "7.0.20r163906", Level::Fail),
            ("2.3.2", "7.0.20r163906", Level::Ok),
            ("2.2.19", "6.1.50r161033", Level::Ok),
            ("2.4.9", "7.3.0r180000", Level::Warn),
        ] {
            let finding = judged(&config, &vm_host(vagrant, virtualbox), vbox);
            assert_eq!(
                finding.level, level,
                "Vagrant {vagrant}, VirtualBox {virtualbox}: {finding:?}"
            );
        }
        let finding = judged(&config, &vm_host("2.4.1", "7.1.4r165100"), vbox);
        assert_eq!(
            finding.message,
            "7.1.4 (/usr/bin/VBoxManage) needs Vagrant 2.4.2 or later, and this is Vagrant 2.4.1"
        );
        let fix = finding.fix.unwrap();
        assert!(fix.contains("upgrade Vagrant to 2.4.2 or later"), "{fix}");
        assert!(
            fix.contains("or install VirtualBox 7.0, the newest Vagrant 2.4.1 drives"),
            "{fix}"
        );
    }

    #[test]
    fn vagrant_before_2_4_is_warned_about_box_architectures() {
        let config = Config::default();
        let vagrant = Subject::Tool(Tool::Vagrant);
        let old = judged(&config, &vm_host("2.3.7", "7.0.20r163906"), vagrant);
        assert_eq!(old.level, Level::Warn);
        assert!(
            old.message.contains("no box architectures"),
            "{}",
            old.message
        );
        assert!(old.fix.unwrap().contains("upgrade Vagrant to 2.4.0"));
        let new = judged(&config, &vm_host("2.4.3", "7.1.4r165100"), vagrant);
        assert_eq!(new.message, "2.4.3 (/usr/bin/vagrant)");
        assert_eq!(new.level, Level::Ok);
        let mut broken = vm_host("2.4.3", "7.1.4");
        broken.vagrant_version = Some(Answer::Failed(
            "Vagrant failed to initialize at a very early stage:\n".into(),
        ));
        let finding = judged(&config, &broken, vagrant);
        assert_eq!(finding.level, Level::Fail);
        assert!(
            finding.message.contains("failed to initialize"),
            "{}",
            finding.message
        );
    }

    #[test]
    fn virtualbox_without_its_kernel_module_fails_with_the_fix() {
        let mut facts = vm_host("2.4.3", "");
        facts.provider_version = Some(Answer::Ok(
            "WARNING: The vboxdrv kernel module is not loaded. Either there is no module\n\
             available for the current kernel (6.8.0-45-generic) or it failed to\n\
             load. Please recompile the kernel module and install it by\n\n\
             sudo /sbin/vboxconfig\n\n7.0.20r163906\n"
                .into(),
        ));
        let finding = judged(&Config::default(), &facts, Subject::Tool(Tool::VirtualBox));
        assert_eq!(finding.level, Level::Fail);
        assert!(finding.fix.unwrap().contains("sudo /sbin/vboxconfig"));
    }

    #[test]
    fn apple_silicon_needs_virtualbox_7_1() {
        let mut facts = vm_host("2.4.3", "7.0.20r163906");
        facts.os = "macos".into();
        facts.arch = "arm64".into();
        let finding = judged(&Config::default(), &facts, Subject::Tool(Tool::VirtualBox));
        assert_eq!(finding.level, Level::Fail, "{finding:?}");
        assert!(finding.message.contains("Apple Silicon"));
    }

    #[test]
    fn a_missing_tool_fails_with_how_to_install_it_and_kubectl_only_warns() {
        let mut facts = vm_host("2.4.3", "7.1.4");
        facts.tools = vec![
            found(Tool::Vagrant),
            prereq::Lookup {
                tool: Tool::VirtualBox,
                path: None,
            },
            prereq::Lookup {
                tool: Tool::Kubectl,
                path: None,
            },
        ];
        let findings = evaluate(&Config::default(), Scope::Doctor, &facts);
        let vbox = the(&findings, Subject::Missing(Tool::VirtualBox));
        assert_eq!(vbox.level, Level::Fail);
        assert!(
            vbox.message.starts_with("`VBoxManage` not found on PATH"),
            "{}",
            vbox.message
        );
        assert!(vbox.fix.as_ref().unwrap().contains("virtualbox.org"));
        assert_eq!(
            the(&findings, Subject::Missing(Tool::Kubectl)).level,
            Level::Warn
        );
    }

    #[test]
    fn libvirt_needs_its_vagrant_plugin() {
        let config: Config = crate::config::parse("[cluster]\nprovider = \"libvirt\"\n").unwrap();
        let mut facts = vm_host("2.4.3", "10.0.0");
        facts.tools = vec![found(Tool::Vagrant), found(Tool::Libvirt)];
        facts.vagrant_plugins = Some(Answer::Ok(
            "vagrant-hostmanager (1.8.10, global)\n  - Version Constraint: > 0\n".into(),
        ));
        let missing = judged(&config, &facts, Subject::LibvirtPlugin);
        assert_eq!(missing.level, Level::Fail);
        assert_eq!(
            missing.fix.as_deref(),
            Some(
                "`vagrant plugin install vagrant-libvirt` (Debian/Ubuntu: `sudo apt install libvirt-dev` first)"
            )
        );
        facts.vagrant_plugins = Some(Answer::Ok("vagrant-libvirt (0.12.2, global)\n".into()));
        let present = judged(&config, &facts, Subject::LibvirtPlugin);
        assert_eq!(
            (present.level, present.message.as_str()),
            (Level::Ok, "vagrant-libvirt (0.12.2, global)")
        );
        assert_eq!(
            judged(&config, &facts, Subject::Tool(Tool::Libvirt)).message,
            "10.0.0 (/usr/bin/virsh)"
        );
        let findings = evaluate(&config, Scope::Doctor, &facts);
        assert!(
            !findings
                .iter()
                .any(|f| matches!(f.check, Subject::HostOnlyNetwork | Subject::Kvm)),
            "VirtualBox's limits do not apply to libvirt: {findings:#?}"
        );
    }

    #[test]
    fn box_list_lines_are_parsed_with_and_without_architectures() {
        let listing = "bento/ubuntu-24.04 (virtualbox, 202502.21.0, (amd64, arm64))\n\
                       generic/ubuntu2204 (libvirt, 4.3.12)\n\
                       There are no installed boxes! Use `vagrant box add` to add some.\n";
        assert_eq!(
            parse_box_list(listing),
            [
                ListedBox {
                    name: "bento/ubuntu-24.04",
                    provider: "virtualbox",
                    version: "202502.21.0",
                    architectures: vec!["amd64", "arm64"],
                },
                ListedBox {
                    name: "generic/ubuntu2204",
                    provider: "libvirt",
                    version: "4.3.12",
                    architectures: vec![],
                },
            ]
        );
    }

    #[test]
    fn the_box_is_found_for_the_provider_and_cpu_or_said_to_be_downloaded() {
        let config = Config::default();
        let mut facts = vm_host("2.4.3", "7.1.4");
        let mut box_for = |listing: &str| {
            facts.vagrant_boxes = Some(Answer::Ok(listing.into()));
            judged(&config, &facts, Subject::Box)
        };
        let right = box_for("bento/ubuntu-24.04 (virtualbox, 202502.21.0, (amd64))\n");
        assert_eq!(right.level, Level::Ok);
        assert_eq!(
            right.message,
            "bento/ubuntu-24.04 202502.21.0 for virtualbox on amd64"
        );
        let absent = box_for("bento/ubuntu-24.04 (libvirt, 202502.21.0)\n");
        assert_eq!(absent.level, Level::Ok);
        assert!(
            absent
                .message
                .contains("not downloaded yet: `create` downloads it"),
            "{}",
            absent.message
        );
        let other_cpu = box_for("bento/ubuntu-24.04 (virtualbox, 202502.21.0, (arm64))\n");
        assert_eq!(other_cpu.level, Level::Warn);
        assert!(
            other_cpu
                .message
                .contains("installed for arm64 only, and this host is amd64")
        );
        assert_eq!(
            other_cpu.fix.as_deref(),
            Some(
                "download it once first: `vagrant box add --provider virtualbox --architecture amd64 bento/ubuntu-24.04`"
            )
        );
    }

    #[test]
    fn vm_addresses_must_be_inside_virtualboxs_host_only_ranges() {
        let network = Subject::HostOnlyNetwork;
        let facts = vm_host("2.4.3", "7.1.4");
        let inside = judged(&Config::default(), &facts, network);
        assert_eq!(inside.level, Level::Ok);
        assert_eq!(
            inside.message,
            "192.168.56.10 to 192.168.56.11 inside 192.168.56.0/21 (VirtualBox's default: there is no /etc/vbox/networks.conf)"
        );
        let mut config: Config =
            crate::config::parse("[cluster]\nmaster_ip = \"10.0.0.10\"\nagents = 2\n").unwrap();
        let outside = judged(&config, &facts, network);
        assert_eq!(outside.level, Level::Fail);
        assert!(
            outside.message.starts_with("10.0.0.10, 10.0.0.11, 10.0.0.12 outside the host-only ranges VirtualBox allows (192.168.56.0/21"),
            "{}",
            outside.message
        );
        // Creating the file drops the default range, so the line keeps it.
        assert!(
            outside.fix.as_ref().unwrap().starts_with(
                "add the line `* 192.168.56.0/21 10.0.0.0/24` to /etc/vbox/networks.conf: `sudo mkdir -p /etc/vbox && echo '* 192.168.56.0/21 10.0.0.0/24' | sudo tee -a /etc/vbox/networks.conf`"
            ),
            "{:?}",
            outside.fix
        );
        let mut allowed = facts.clone();
        allowed.networks_conf.1 = Some("# lab\n* 10.0.0.0/8 192.168.0.0/16\n* 2001::/64\n".into());
        assert_eq!(judged(&config, &allowed, network).level, Level::Ok);
        // An existing file replaces the default: 192.168.56.x is no longer allowed.
        config.cluster.master_ip = Ipv4Addr::new(192, 168, 56, 10);
        let mut narrow = facts;
        narrow.networks_conf.1 = Some("* 10.0.0.0/8\n".into());
        let refused = judged(&config, &narrow, network);
        assert_eq!(refused.level, Level::Fail);
        assert!(
            refused
                .fix
                .unwrap()
                .starts_with("add the line `* 192.168.56.0/24` to")
        );
    }

    #[test]
    fn loaded_kvm_modules_are_a_warning_for_virtualbox() {
        let mut facts = vm_host("2.4.3", "7.1.4");
        facts.modules = Some("kvm 1404928 1 kvm_intel, Live 0x0000000000000000\nkvm_intel 487424 0 - Live 0x0000000000000000\nvboxdrv 696320 2 vboxnetadp,vboxnetflt, Live 0x0000000000000000 (OE)\n".into());
        let finding = judged(&Config::default(), &facts, Subject::Kvm);
        assert_eq!(finding.level, Level::Warn);
        assert!(finding.message.contains("VERR_VMX_IN_VMX_ROOT_MODE"));
        assert!(
            finding
                .fix
                .unwrap()
                .contains("`sudo modprobe -r kvm_intel kvm`")
        );
        facts.modules =
            Some("vboxdrv 696320 2 vboxnetadp,vboxnetflt, Live 0x0000000000000000 (OE)\n".into());
        assert_eq!(
            judged(&Config::default(), &facts, Subject::Kvm).level,
            Level::Ok
        );
    }

    #[test]
    fn memory_for_every_vm_is_checked_against_the_host() {
        let meminfo = |total_mib: u64, available_mib: u64| {
            format!(
                "MemTotal:       {} kB\nMemFree:          123456 kB\nMemAvailable:   {} kB\n",
                total_mib * 1024,
                available_mib * 1024
            )
        };
        let config: Config =
            crate::config::parse("[cluster]\nagents = 2\nmemory_mb = 2048\n").unwrap();
        let mut facts = vm_host("2.4.3", "7.1.4");
        let mut with = |total, available| {
            facts.meminfo = Some(meminfo(total, available));
            judged(&config, &facts, Subject::Memory)
        };
        let plenty = with(16000, 9000);
        assert_eq!(plenty.level, Level::Ok);
        assert_eq!(
            plenty.message,
            "3 VMs × 2048 MiB = 6144 MiB; 9000 MiB available"
        );
        assert_eq!(with(16000, 5000).level, Level::Warn);
        let small = with(4000, 3000);
        assert_eq!(small.level, Level::Fail);
        assert!(small.message.contains("this host has 4000 MiB in all"));
    }

    #[test]
    fn wsl_with_virtualbox_fails_instead_of_timing_out() {
        let mut facts = vm_host("2.4.3", "7.1.4");
        assert_eq!(
            judged(&Config::default(), &facts, Subject::Host).message,
            "linux amd64"
        );
        facts.wsl = true;
        let finding = judged(&Config::default(), &facts, Subject::Host);
        assert_eq!(finding.level, Level::Fail);
        assert!(
            finding
                .message
                .contains("WSL2 cannot reach VirtualBox's host-only addresses")
        );
    }

    fn docker_host(server: Answer, buildx: Answer, config_json: Option<&str>) -> Facts {
        Facts {
            os: "linux".into(),
            arch: "amd64".into(),
            tools: vec![found(Tool::Docker)],
            docker_server: Some(server),
            buildx: Some(buildx),
            docker_config: Some((
                "/home/u/.docker/config.json".into(),
                config_json.map(str::to_string),
            )),
            ..Facts::default()
        }
    }

    const BUILDX: &str = "github.com/docker/buildx v0.17.1 257815a\n";

    #[test]
    fn a_stopped_daemon_is_told_apart_from_a_missing_login() {
        let config: Config = crate::config::parse("[registry]\nnamespace = \"student\"\n").unwrap();
        let stopped = docker_host(
            Answer::Failed("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n".into()),
            Answer::Ok(BUILDX.into()),
            Some(r#"{"auths": {"https://index.docker.io/v1/": {}}}"#),
        );
        let findings = evaluate(&config, Scope::Doctor, &stopped);
        let daemon = the(&findings, Subject::DockerDaemon);
        assert_eq!(daemon.level, Level::Fail);
        assert!(
            daemon
                .message
                .starts_with("not running or not reachable: Cannot connect")
        );
        assert!(
            daemon
                .fix
                .as_ref()
                .unwrap()
                .contains("systemctl start docker")
        );
        assert_eq!(the(&findings, Subject::DockerLogin).level, Level::Ok);
        assert_eq!(the(&findings, Subject::Buildx).message, "0.17.1");

        let denied = docker_host(
            Answer::Failed("permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: Get \"http://%2Fvar%2Frun%2Fdocker.sock/v1.47/version\": dial unix /var/run/docker.sock: connect: permission denied\n".into()),
            Answer::Ok(BUILDX.into()),
            None,
        );
        let findings = evaluate(&config, Scope::Doctor, &denied);
        assert!(
            the(&findings, Subject::DockerDaemon)
                .fix
                .as_ref()
                .unwrap()
                .contains("sudo usermod -aG docker $USER")
        );
        let login = the(&findings, Subject::DockerLogin);
        assert_eq!(login.level, Level::Fail);
        assert_eq!(login.message, "docker is not logged in to docker.io");
        assert_eq!(
            login.fix.as_deref(),
            Some("run `docker login -u student` (or deploy with --skip-push)")
        );
    }

    #[test]
    fn a_missing_buildx_says_how_to_install_it() {
        let facts = docker_host(
            Answer::Ok("27.3.1\n".into()),
            Answer::Failed(
                "docker: 'buildx' is not a docker command.\nSee 'docker --help'\n".into(),
            ),
            Some(r#"{"credsStore": "desktop"}"#),
        );
        let findings = evaluate(&Config::default(), Scope::Doctor, &facts);
        assert_eq!(
            the(&findings, Subject::DockerDaemon).message,
            "answers (Docker Engine 27.3.1)"
        );
        let buildx = the(&findings, Subject::Buildx);
        assert_eq!(buildx.level, Level::Fail);
        assert_eq!(
            buildx.message,
            "the buildx plugin is missing: docker: 'buildx' is not a docker command."
        );
        assert!(
            buildx
                .fix
                .as_ref()
                .unwrap()
                .contains("sudo apt install docker-buildx")
        );
        assert_eq!(the(&findings, Subject::DockerLogin).level, Level::Ok);
    }

    #[test]
    fn a_login_for_another_registry_does_not_count() {
        let facts = docker_host(
            Answer::Ok("27.3.1\n".into()),
            Answer::Ok(BUILDX.into()),
            Some(r#"{"auths": {"ghcr.io": {"auth": "x"}}}"#),
        );
        let findings = evaluate(&Config::default(), Scope::Doctor, &facts);
        let login = the(&findings, Subject::DockerLogin);
        assert_eq!(login.level, Level::Fail);
        assert_eq!(
            login.fix.as_deref(),
            Some("run `docker login` (or deploy with --skip-push)")
        );
    }

    #[test]
    fn a_registry_that_needs_no_login_is_not_refused() {
        let mut config = Config::default();
        config.registry.server = "localhost:5000".into();
        let mut facts = docker_host(
            Answer::Ok("27.3.1\n".into()),
            Answer::Ok(BUILDX.into()),
            Some("{}"),
        );
        for (status, level) in [(Some(401), Level::Fail), (None, Level::Fail)] {
            facts.registry_status = status;
            let findings = evaluate(&config, Scope::Doctor, &facts);
            assert_eq!(
                the(&findings, Subject::DockerLogin).level,
                level,
                "{status:?}"
            );
        }
        facts.registry_status = Some(200);
        let findings = evaluate(&config, Scope::Doctor, &facts);
        let login = the(&findings, Subject::DockerLogin);
        assert_eq!(login.level, Level::Ok);
        assert_eq!(
            login.message,
            "localhost:5000 needs no login (it answers GET /v2/ without credentials)"
        );
    }

    #[test]
    fn the_builder_says_whether_it_builds_several_platforms() {
        let inspect = |driver: &str| {
            Some(Answer::Ok(format!(
                "Name:          default\nDriver:        {driver}\nLast Activity: 2026-12-07 10:00:00 +0000 UTC\n\nNodes:\nName:      default\nEndpoint:  default\nStatus:    running\nBuildKit:  v0.13.2\nPlatforms: linux/amd64, linux/amd64/v2, linux/386\n"
            )))
        };
        let classic = Some(Answer::Ok(
            "[[\"Backing Filesystem\",\"extfs\"],[\"Supports d_type\",\"true\"]]\n".into(),
        ));
        let containerd = Some(Answer::Ok(
            "[[\"driver-type\",\"io.containerd.snapshotter.v1\"]]\n".into(),
        ));
        let builder = |driver: &str, store: &Option<Answer>| {
            let facts = Facts {
                builder: inspect(driver),
                image_store: store.clone(),
                ..Facts::default()
            };
            Builder::of(&facts).map(|b| b.multi_platform)
        };
        assert_eq!(builder("docker", &classic), Some(false));
        assert_eq!(builder("docker", &containerd), Some(true));
        assert_eq!(builder("docker-container", &classic), Some(true));
        // Not asked, or an answer without a driver: nothing to say.
        assert_eq!(Builder::of(&Facts::default()), None);
        let mute = Facts {
            builder: Some(Answer::Ok(String::new())),
            ..Facts::default()
        };
        assert_eq!(Builder::of(&mute), None);
        let facts = Facts {
            builder: inspect("docker"),
            image_store: classic,
            ..Facts::default()
        };
        let findings = evaluate(&Config::default(), Scope::Doctor, &facts);
        let found = the(&findings, Subject::Builder);
        assert_eq!(found.level, Level::Ok);
        assert!(
            found
                .message
                .starts_with("docker driver, builds one platform at a time"),
            "{}",
            found.message
        );
    }
}
