//! The `vagrant` CLI, the only way this tool touches the VMs. Every call runs
//! in the project directory (where the Vagrantfile is) with the cluster's
//! settings in `ORCH_*` variables, as a named step of the process runner,
//! bounded by `cluster.step_timeout_secs` (but for the box download, whose
//! time is the network's).

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, MASTER};
use crate::process::{Command, FailureKind, ProcessError, Runner, Stdout};
use crate::state::State;

/// Where K3s writes the admin kubeconfig on the master.
const K3S_KUBECONFIG: &str = "/etc/rancher/k3s/k3s.yaml";

#[derive(Debug, Clone)]
pub struct Vagrant {
    runner: Runner,
    base: Command,
    box_name: String,
    provider: &'static str,
}

/// A machine and its state as `vagrant status` names it: `running`,
/// `poweroff`, `saved`, `aborted`, `not_created` (VirtualBox), `shutoff`,
/// `paused` (libvirt)...
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Machine {
    pub name: String,
    pub state: String,
}

impl Machine {
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    pub fn is_created(&self) -> bool {
        self.state != "not_created"
    }

    /// Powered off (or never created): nothing to halt.
    pub fn is_off(&self) -> bool {
        matches!(
            self.state.as_str(),
            "poweroff" | "shutoff" | "aborted" | "not_created"
        )
    }
}

impl Vagrant {
    pub fn new(config: &Config, project_dir: &Path, state: &State, runner: Runner) -> Self {
        let cluster = &config.cluster;
        let base = Command::new("vagrant")
            .dir(project_dir)
            .env("ORCH_AGENTS", cluster.agents.to_string())
            .env("ORCH_MASTER_IP", cluster.master_ip.to_string())
            .env("ORCH_CPUS", cluster.cpus.to_string())
            .env("ORCH_MEMORY_MB", cluster.memory_mb.to_string())
            .env("ORCH_BOX", cluster.box_name.clone())
            .env("ORCH_K3S_VERSION", cluster.k3s_version.clone())
            .env("ORCH_TOKEN_FILE", state.token().display().to_string())
            .env("VAGRANT_DEFAULT_PROVIDER", cluster.provider.as_str())
            .time_limit(Some(Duration::from_secs(cluster.step_timeout_secs)));
        Vagrant {
            runner,
            base,
            box_name: cluster.box_name.clone(),
            provider: cluster.provider.as_str(),
        }
    }

    /// Runs one vagrant command; one over its time limit says which setting that is.
    async fn run(&self, step: &str, args: &[&str], stdout: Stdout) -> anyhow::Result<String> {
        self.run_command(step, self.base.clone().args(args.iter().copied()), stdout)
            .await
    }

    async fn run_command(
        &self,
        step: &str,
        command: Command,
        stdout: Stdout,
    ) -> anyhow::Result<String> {
        match self.runner.run(step, command, stdout).await {
            Err(
                err @ ProcessError {
                    kind: FailureKind::TimedOut(_),
                    ..
                },
            ) => Err(anyhow::Error::new(err).context(format!(
                "{step} took longer than cluster.step_timeout_secs (orchestrator.toml) and was stopped; \
                 run the same command again to resume"
            ))),
            result => Ok(result?),
        }
    }

    /// Every machine of the Vagrantfile and its state.
    pub async fn status(&self) -> anyhow::Result<Vec<Machine>> {
        let step = "vagrant status";
        match self
            .run(step, &["status", "--machine-readable"], Stdout::Capture)
            .await
        {
            Ok(out) => Ok(parse_status(&out)),
            // In machine-readable mode vagrant prints its errors (no provider,
            // a broken Vagrantfile) on the captured standard output, which a
            // failure does not show: ask again in plain mode to show them.
            Err(machine_readable) => match self.run(step, &["status"], Stdout::Log).await {
                Err(plain) => Err(plain),
                Ok(_) => Err(machine_readable),
            },
        }
    }

    /// Whether the configured box is installed for the configured provider.
    pub async fn has_box(&self) -> anyhow::Result<bool> {
        let out = self
            .run("vagrant box list", &["box", "list"], Stdout::Capture)
            .await?;
        Ok(box_listed(&out, &self.box_name, self.provider))
    }

    /// Downloads the box once, so that concurrent `up`s do not race to add it.
    pub async fn add_box(&self, step: &str) -> anyhow::Result<()> {
        let args = ["box", "add", "--provider", self.provider, &self.box_name];
        let command = self.base.clone().args(args).time_limit(None);
        self.run_command(step, command, Stdout::Log).await.map(drop)
    }

    /// Boots (creating if needed) machines without provisioning them.
    pub async fn up(&self, step: &str, machines: &[&str]) -> anyhow::Result<()> {
        let args: Vec<&str> = ["up", "--no-provision"]
            .iter()
            .chain(machines)
            .copied()
            .collect();
        self.run(step, &args, Stdout::Log).await.map(drop)
    }

    pub async fn provision(&self, step: &str, machine: &str) -> anyhow::Result<()> {
        self.run(step, &["provision", machine], Stdout::Log)
            .await
            .map(drop)
    }

    /// Reboots machines (their networks set up again), without provisioning them.
    pub async fn reload(&self, step: &str, machines: &[&str]) -> anyhow::Result<()> {
        let args: Vec<&str> = ["reload", "--no-provision"]
            .iter()
            .chain(machines)
            .copied()
            .collect();
        self.run(step, &args, Stdout::Log).await.map(drop)
    }

    pub async fn halt(&self, step: &str, machine: &str) -> anyhow::Result<()> {
        self.run(step, &["halt", machine], Stdout::Log)
            .await
            .map(drop)
    }

    /// Destroys `machines`, or every machine of the Vagrantfile when none is named.
    pub async fn destroy(&self, step: &str, machines: &[&str]) -> anyhow::Result<()> {
        let args: Vec<&str> = ["destroy", "-f"].iter().chain(machines).copied().collect();
        self.run(step, &args, Stdout::Log).await.map(drop)
    }

    /// The master's admin kubeconfig. It holds credentials: it is captured,
    /// never logged.
    pub async fn master_kubeconfig(&self, step: &str) -> anyhow::Result<String> {
        let script = format!("sudo cat {K3S_KUBECONFIG}");
        self.run(step, &["ssh", MASTER, "-c", &script], Stdout::Capture)
            .await
    }
}

impl Vagrant {
    /// Runs `script` on `machine` with `stdin` as its standard input (e.g. an
    /// image archive for `k3s ctr images import -`). Without a terminal
    /// (`ssh -T`; `vagrant ssh -c` asks for one by default), so that binary
    /// input passes unaltered.
    pub async fn ssh_with_stdin(
        &self,
        step: &str,
        machine: &str,
        script: &str,
        stdin: &Path,
    ) -> anyhow::Result<()> {
        let command = self
            .base
            .clone()
            .args(["ssh", machine, "-c", script, "--", "-T"])
            .stdin_file(stdin);
        self.run_command(step, command, Stdout::Log).await.map(drop)
    }
}

/// The machines in `vagrant status --machine-readable` output, whose lines are
/// `TIMESTAMP,TARGET,TYPE,DATA...`.
pub fn parse_status(text: &str) -> Vec<Machine> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim_end_matches('\r').splitn(4, ',');
            let (_time, target, kind, data) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            (kind == "state" && !target.is_empty()).then(|| Machine {
                name: target.to_string(),
                state: data.to_string(),
            })
        })
        .collect()
}

/// Whether `vagrant box list` (lines such as `bento/ubuntu-24.04 (virtualbox,
/// 202502.21.0)`) shows `box_name` for `provider`.
fn box_listed(text: &str, box_name: &str, provider: &str) -> bool {
    text.lines().any(|line| {
        line.split_once(" (").is_some_and(|(name, rest)| {
            name.trim() == box_name
                && rest.split([',', ')']).next().map(str::trim) == Some(provider)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
1700000000,master,metadata,provider,virtualbox
1700000000,agent,metadata,provider,virtualbox
1700000000,agent-2,metadata,provider,virtualbox
1700000001,master,provider-name,virtualbox
1700000001,master,state,running
1700000001,master,state-human-short,running
1700000001,master,state-human-long,The VM is running. To stop this VM%!(VAGRANT_COMMA) you can run `vagrant halt`
1700000001,agent,provider-name,virtualbox
1700000001,agent,state,poweroff
1700000001,agent,state-human-short,poweroff
1700000001,agent-2,provider-name,virtualbox
1700000001,agent-2,state,not_created
1700000001,,ui,info,Current machine states:\\n\\nmaster                    running (virtualbox)
";

    #[test]
    fn status_lists_each_machine_and_its_state() {
        let machines = parse_status(STATUS);
        let pairs: Vec<(&str, &str)> = machines
            .iter()
            .map(|m| (m.name.as_str(), m.state.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("master", "running"),
                ("agent", "poweroff"),
                ("agent-2", "not_created")
            ]
        );
        assert!(machines[0].is_running());
        assert!(machines[1].is_created() && !machines[1].is_running());
        assert!(!machines[2].is_created());
        assert!(!machines[0].is_off() && machines[1].is_off() && machines[2].is_off());
    }

    #[test]
    fn status_ignores_noise_and_crlf() {
        let text = "Vagrant warning: something\r\n1700000000,master,state,shutoff\r\n\r\n";
        assert_eq!(
            parse_status(text),
            [Machine {
                name: "master".into(),
                state: "shutoff".into()
            }]
        );
    }

    #[test]
    fn box_list_is_matched_on_name_and_provider() {
        let list = "bento/ubuntu-24.04 (virtualbox, 202502.21.0)\n\
                    bento/ubuntu-24.04 (libvirt, 202502.21.0, (amd64))\n\
                    generic/alpine (virtualbox, 4.3.12)\n";
        assert!(box_listed(list, "bento/ubuntu-24.04", "virtualbox"));
        assert!(box_listed(list, "bento/ubuntu-24.04", "libvirt"));
        assert!(!box_listed(list, "generic/alpine", "libvirt"));
        assert!(!box_listed(
            "There are no installed boxes! Use `vagrant box add` to add some.\n",
            "x",
            "virtualbox"
        ));
    }
}
