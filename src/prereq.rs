//! The host tools each command needs, found with `which` before anything runs,
//! so a missing one stops a command before it has changed anything — and says
//! how to install it.

use std::path::PathBuf;

use crate::config::Provider;
use crate::error::Failure;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Vagrant,
    VirtualBox,
    Libvirt,
    Docker,
    Kubectl,
}

impl Tool {
    /// The provider's own tool, whose presence shows the provider is installed.
    pub fn provider(provider: Provider) -> Tool {
        match provider {
            Provider::Virtualbox => Tool::VirtualBox,
            Provider::Libvirt => Tool::Libvirt,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tool::Vagrant => "vagrant",
            Tool::VirtualBox => "VirtualBox",
            Tool::Libvirt => "libvirt",
            Tool::Docker => "docker",
            Tool::Kubectl => "kubectl",
        }
    }

    /// The executable looked up on `PATH`.
    pub fn program(self) -> &'static str {
        match self {
            Tool::Vagrant => "vagrant",
            Tool::VirtualBox => "VBoxManage",
            Tool::Libvirt => "virsh",
            Tool::Docker => "docker",
            Tool::Kubectl => "kubectl",
        }
    }

    /// What the tool is for here.
    pub fn purpose(self) -> &'static str {
        match self {
            Tool::Vagrant => "it runs the cluster's VMs",
            Tool::VirtualBox => "it is the VMs' provider (cluster.provider = \"virtualbox\")",
            Tool::Libvirt => "it is the VMs' provider (cluster.provider = \"libvirt\")",
            Tool::Docker => "it builds and pushes the stack's images",
            Tool::Kubectl => "it lets you look at the cluster yourself (optional)",
        }
    }

    /// How to get it.
    pub fn install(self) -> &'static str {
        match self {
            Tool::Vagrant => {
                "install it from https://developer.hashicorp.com/vagrant/install \
                 (Debian/Ubuntu: HashiCorp's apt repository, then `sudo apt install vagrant`; \
                 macOS: `brew install hashicorp/tap/hashicorp-vagrant`)"
            }
            Tool::VirtualBox => {
                "install it from https://www.virtualbox.org/wiki/Downloads \
                 (Debian/Ubuntu: `sudo apt install virtualbox`), or set cluster.provider = \"libvirt\""
            }
            Tool::Libvirt => {
                "Debian/Ubuntu: `sudo apt install libvirt-daemon-system libvirt-clients libvirt-dev` and \
                 `vagrant plugin install vagrant-libvirt`, then add yourself to the `libvirt` group"
            }
            Tool::Docker => {
                "install it from https://docs.docker.com/engine/install/ \
                 (Debian/Ubuntu: `sudo apt install docker.io docker-buildx`, then add yourself to the `docker` group)"
            }
            Tool::Kubectl => {
                "install it from https://kubernetes.io/docs/tasks/tools/#kubectl \
                 (snap: `sudo snap install kubectl --classic`)"
            }
        }
    }
}

/// One tool looked up: where it is, if anywhere.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub tool: Tool,
    pub path: Option<PathBuf>,
}

/// What the VM commands need: vagrant and the configured provider.
pub fn cluster_tools(provider: Provider) -> [Tool; 2] {
    [Tool::Vagrant, Tool::provider(provider)]
}

pub fn check(tools: &[Tool]) -> Vec<Lookup> {
    tools
        .iter()
        .map(|&tool| Lookup {
            tool,
            path: which::which(tool.program()).ok(),
        })
        .collect()
}

/// The error for the missing tools among `checks` (exit code 3), if any.
pub fn missing(checks: &[Lookup]) -> Option<Failure> {
    let lines: Vec<String> = checks
        .iter()
        .filter(|c| c.path.is_none())
        .map(|c| {
            format!(
                "  {} (`{}` not found on PATH): {}; {}",
                c.tool.name(),
                c.tool.program(),
                c.tool.purpose(),
                c.tool.install()
            )
        })
        .collect();
    (!lines.is_empty())
        .then(|| Failure::MissingTool(format!("missing prerequisites:\n{}", lines.join("\n"))))
}

/// Fails with exit code 3, naming each missing tool and how to install it,
/// unless every one of `tools` is on `PATH`.
pub fn require(tools: &[Tool]) -> Result<(), Failure> {
    missing(&check(tools)).map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_names_each_absent_tool_with_its_hint() {
        let checks = [
            Lookup {
                tool: Tool::Vagrant,
                path: Some("/usr/bin/vagrant".into()),
            },
            Lookup {
                tool: Tool::VirtualBox,
                path: None,
            },
        ];
        let failure = missing(&checks).unwrap();
        assert_eq!(failure.exit_code(), crate::error::exit::MISSING_TOOL);
        let text = failure.to_string();
        assert!(
            text.contains("VirtualBox (`VBoxManage` not found on PATH)"),
            "{text}"
        );
        assert!(text.contains("virtualbox.org"), "{text}");
        assert!(!text.contains("vagrant (`"), "{text}");
        assert!(missing(&checks[..1]).is_none());
    }

    #[test]
    fn the_provider_decides_the_tool() {
        assert_eq!(
            cluster_tools(Provider::Libvirt),
            [Tool::Vagrant, Tool::Libvirt]
        );
        assert_eq!(Tool::provider(Provider::Virtualbox).program(), "VBoxManage");
    }
}
