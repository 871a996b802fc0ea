//! The cluster's life: create, start, stop, destroy and its status, each safe
//! to re-run. `create` resumes where a failed or interrupted run stopped:
//! `vagrant up` and `vagrant provision` are idempotent, and the kubeconfig,
//! written last, marks a cluster whose provisioning finished.
//!
//! Boot order avoids the races of parallel `vagrant up` processes (each
//! holds only its own locks): with libvirt one `vagrant up` boots every VM,
//! in parallel under one lock, so the box volume is uploaded once; with
//! VirtualBox (no `--parallel`) the master boots alone first — it creates the
//! host-only network — then each agent boots and joins beside the master's
//! provisioning, since the agents' script waits for the master's API itself.
//!
//! A boot that failed or was interrupted leaves a marker per machine (set
//! while its `up` runs) for `create` and `start` to repair it first: a VM
//! whose very first boot did not finish never had its private network
//! configured, and a later `up` does not do it (seen on real libvirt VMs), so
//! it is destroyed and created again; any other VM left running has no
//! private address until it is reloaded.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use futures::future::join_all;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Serialize;

use crate::config::{Config, Provider};
use crate::k3s_release::K3sRelease;
use crate::kubeapi::{self, CONTEXT, Target};
use crate::kubeconfig;
use crate::nodes::{self, NodeSummary, NotReady};
use crate::prereq;
use crate::process::Runner;
use crate::reporter::Reporter;
use crate::state::{self, State};
use crate::vagrant::{Machine, Vagrant};

/// The port the K3s API server listens on.
const API_PORT: u16 = 6443;

/// What a boot marker says of a machine's first boot, which creates it.
const FIRST_BOOT: &str = "first boot";

/// A boot that failed or was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unfinished {
    /// The boot that created the machine: its private network was never configured.
    FirstBoot,
    /// A later boot.
    Boot,
}

/// How long `create` on a running cluster waits for a node before it
/// provisions that node again (a healthy one renews its lease every 10 s).
const REPAIR_AFTER: Duration = Duration::from_secs(60);

pub struct Cluster<'a> {
    config: &'a Config,
    state: &'a State,
    vagrant: Vagrant,
    reporter: &'a dyn Reporter,
    /// When the command started: a node counts as Ready only with a newer heartbeat.
    started: jiff::Timestamp,
}

/// What `create` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// It booted, provisioned or finished the cluster.
    Built,
    /// Every VM was running with its nodes Ready: nothing was changed.
    AlreadyRunning,
}

/// What `destroy` removed and kept.
#[derive(Debug, Clone)]
pub struct Destroyed {
    /// The user's kubeconfig, when the `orchestrator` context was removed from it.
    pub context_removed_from: Option<PathBuf>,
    /// The stack's credentials, kept so a new cluster gets the same passwords.
    pub kept_credentials: Option<PathBuf>,
}

/// The cluster's part of `status`: the VMs, and the nodes when the API answers.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub machines: Vec<Machine>,
    /// Why there are no VMs to show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machines_error: Option<String>,
    pub nodes: Vec<NodeSummary>,
    /// Which API server `nodes` come from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// Why there are no nodes to show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_error: Option<String>,
}

impl<'a> Cluster<'a> {
    pub fn new(
        config: &'a Config,
        project_dir: &Path,
        state: &'a State,
        reporter: &'a dyn Reporter,
    ) -> Self {
        let vagrant = Vagrant::new(config, project_dir, state, Runner::new(state.logs()));
        Cluster {
            config,
            state,
            vagrant,
            reporter,
            started: jiff::Timestamp::now(),
        }
    }

    /// Boots, provisions and connects the cluster, or checks the running one.
    pub async fn create(&self) -> anyhow::Result<Created> {
        self.require_tools()?;
        ensure_token(&self.state.token())?;
        let machines = self.machines().await?;
        let finished = machines
            .iter()
            .all(|m| m.is_running() && self.unfinished(m).is_none());
        if finished && self.state.kubeconfig().exists() {
            self.reporter
                .note("every VM is running: checking the cluster");
            let ours = std::fs::read_to_string(self.state.kubeconfig())
                .with_context(|| format!("cannot read {}", self.state.kubeconfig().display()))?;
            self.task("kubeconfig", self.install_user_context(&ours))
                .await?;
            self.check_running().await?;
            return Ok(Created::AlreadyRunning);
        }
        if machines.iter().any(|m| !m.is_created()) {
            self.ensure_box().await?;
        }
        let release = K3sRelease::new(&self.config.cluster, self.state);
        let fetch = release.ensure(self.reporter, "K3s release");
        self.task("K3s release", async {
            fetch.await.map(|done| done.to_string())
        })
        .await?;
        self.bring_up(&machines, true).await?;
        self.task("kubeconfig", self.fetch_kubeconfig()).await?;
        self.wait_ready(self.ready_timeout()).await.map_err(|err| {
            repair_hint(
                err,
                "run `orchestrator create` again: it provisions them again",
            )
        })?;
        Ok(Created::Built)
    }

    /// Boots the halted or suspended VMs, without provisioning, and waits for
    /// their nodes.
    pub async fn start(&self) -> anyhow::Result<()> {
        self.require_tools()?;
        let machines = self.machines().await?;
        if let Some(missing) = machines.iter().find(|m| !m.is_created()) {
            anyhow::bail!(
                "the VM {} has not been created: run `orchestrator create` first",
                missing.name
            );
        }
        if !self.state.kubeconfig().exists() {
            anyhow::bail!(
                "{} is missing (create did not finish): run `orchestrator create`",
                self.state.kubeconfig().display()
            );
        }
        self.bring_up(&machines, false).await?;
        self.wait_ready(self.ready_timeout()).await.map_err(|err| {
            repair_hint(
                err,
                "to repair a node that does not come back, run `orchestrator create`: it provisions it again",
            )
        })
    }

    /// Halts the agents, then the master; the VMs' disks are kept.
    pub async fn stop(&self) -> anyhow::Result<()> {
        self.require_tools()?;
        let machines = self.machines().await?;
        let (master, agents): (Vec<&Machine>, Vec<&Machine>) = machines
            .iter()
            .filter(|m| !m.is_off())
            .partition(|m| m.name == "master");
        if master.is_empty() && agents.is_empty() {
            self.reporter.note("no VM is running");
        }
        for group in [agents, master] {
            let halts = group.iter().map(|m| {
                let step = format!("stop {}", m.name);
                async move { self.task(&step, self.vagrant.halt(&step, &m.name)).await }
            });
            first_error(join_all(halts).await)?;
        }
        Ok(())
    }

    /// Deletes the VMs, the `orchestrator` entries of the user's kubeconfig and
    /// the cluster's local state; keeps the stack's credentials.
    pub async fn destroy(&self) -> anyhow::Result<Destroyed> {
        self.require_tools()?;
        self.task("destroy VMs", self.vagrant.destroy("destroy VMs", &[]))
            .await?;
        let user_path = kubeconfig::user_path()?;
        let removed = self
            .task("kubeconfig", async { kubeconfig::uninstall(&user_path) })
            .await?;
        let markers = self.config.cluster.machines().into_iter();
        let markers = markers.map(|machine| self.state.boot_marker(&machine));
        for file in [self.state.token(), self.state.kubeconfig()]
            .into_iter()
            .chain(markers)
        {
            remove_if_present(&file)?;
        }
        let credentials = self.state.credentials();
        Ok(Destroyed {
            context_removed_from: removed.then_some(user_path),
            kept_credentials: credentials.exists().then_some(credentials),
        })
    }

    /// The VMs' states and, when the API answers, the nodes and the connection
    /// (for the stack's part of `status`). `target` chooses the cluster as
    /// kubectl would; without one, the cluster's own kubeconfig.
    pub async fn status(
        &self,
        target: &Target,
    ) -> anyhow::Result<(ClusterStatus, Option<kubeapi::Connection>)> {
        let explicit = target.kubeconfig.is_some() || target.context.is_some();
        // Pointed at some cluster explicitly, status still shows it on a host without the VM tools.
        let (machines, machines_error) = match self.require_tools() {
            Ok(()) => (self.machines().await?, None),
            Err(missing) if explicit => (Vec::new(), Some(missing.to_string())),
            Err(missing) => return Err(missing.into()),
        };
        let master_running = machines
            .iter()
            .any(|m| m.name == "master" && m.is_running());
        let target = match explicit {
            true => Ok(target.clone()),
            false if !self.state.kubeconfig().exists() => {
                Err("the cluster has no kubeconfig yet: run `orchestrator create`".to_string())
            }
            false if !master_running => Err("the master VM is not running".to_string()),
            false => Ok(Target {
                kubeconfig: Some(self.state.kubeconfig()),
                context: None,
            }),
        };
        let mut status = ClusterStatus {
            machines,
            machines_error,
            nodes: Vec::new(),
            api: None,
            api_error: None,
        };
        let mut answered = None;
        let listed = match target {
            Ok(target) => match kubeapi::connect(&target).await {
                Ok(connection) => {
                    status.api = Some(connection.description.clone());
                    let nodes = nodes::list(connection.client.clone()).await;
                    answered = Some(connection);
                    nodes.map_err(|err| format!("{err:#}"))
                }
                Err(err) => Err(format!("{err:#}")),
            },
            Err(why) => Err(why),
        };
        match listed {
            Ok(nodes) => status.nodes = nodes,
            Err(why) => status.api_error = Some(why),
        }
        Ok((status, answered))
    }

    fn require_tools(&self) -> Result<(), crate::error::Failure> {
        prereq::require(&prereq::cluster_tools(self.config.cluster.provider))
    }

    /// The configured machines in order, with the states `vagrant status` gives.
    async fn machines(&self) -> anyhow::Result<Vec<Machine>> {
        let listed = self.vagrant.status().await?;
        Ok(self
            .config
            .cluster
            .machines()
            .into_iter()
            .map(|name| {
                let state = listed
                    .iter()
                    .find(|m| m.name == name)
                    .map_or_else(|| "not_created".to_string(), |m| m.state.clone());
                Machine { name, state }
            })
            .collect())
    }

    /// Adds the box once before the machines boot side by side.
    async fn ensure_box(&self) -> anyhow::Result<()> {
        if !self.vagrant.has_box().await? {
            let step = "download box";
            self.task(step, self.vagrant.add_box(step)).await?;
        }
        Ok(())
    }

    /// Which boot of this existing machine failed or was interrupted, if any.
    fn unfinished(&self, machine: &Machine) -> Option<Unfinished> {
        let marker = std::fs::read_to_string(self.state.boot_marker(&machine.name)).ok()?;
        machine.is_created().then_some(match marker.trim() {
            FIRST_BOOT => Unfinished::FirstBoot,
            _ => Unfinished::Boot,
        })
    }

    /// Repairs what broken boots left (see the module's comment), boots the
    /// machines that are not running, in the order the provider needs, and
    /// provisions every machine when `provision` is set.
    async fn bring_up(&self, machines: &[Machine], provision: bool) -> anyhow::Result<()> {
        let (mut never_booted, mut half_booted) = (Vec::new(), Vec::new());
        for machine in machines {
            match self.unfinished(machine) {
                Some(Unfinished::FirstBoot) => never_booted.push(machine.name.as_str()),
                Some(Unfinished::Boot) if machine.is_running() => {
                    half_booted.push(machine.name.as_str())
                }
                _ => {}
            }
        }
        if !never_booted.is_empty() {
            let step = format!(
                "remove {} (its first boot did not finish)",
                never_booted.join(", ")
            );
            self.task(&step, self.vagrant.destroy(&step, &never_booted))
                .await?;
        }
        if !half_booted.is_empty() {
            let step = format!("reboot {}", half_booted.join(", "));
            let reload = self.vagrant.reload(&step, &half_booted);
            self.task(&step, self.marked(&half_booted, &[], reload))
                .await?;
        }
        let down: Vec<&str> = machines
            .iter()
            .filter(|m| !m.is_running() || never_booted.contains(&m.name.as_str()))
            .map(|m| m.name.as_str())
            .collect();
        // Machines that will be created by their boot.
        let first: Vec<&str> = machines
            .iter()
            .filter(|m| !m.is_created() || never_booted.contains(&m.name.as_str()))
            .map(|m| m.name.as_str())
            .collect();
        let names = self.config.cluster.machines();
        let (master, agents) = names
            .split_first()
            .expect("the master is always configured");
        match self.config.cluster.provider {
            Provider::Libvirt => {
                self.boot(&down, &first).await?;
                if provision {
                    first_error(join_all(names.iter().map(|m| self.provision(m))).await)?;
                }
                Ok(())
            }
            Provider::Virtualbox => {
                let booted = |name: &str| !down.contains(&name);
                if !booted(master) {
                    self.boot(&[master], &first).await?;
                }
                let master_side = async {
                    match provision {
                        true => self.provision(master).await,
                        false => Ok(()),
                    }
                };
                let first = &first;
                let agent_sides = agents.iter().map(|agent| async move {
                    if !booted(agent) {
                        self.boot(&[agent], first).await?;
                    }
                    match provision {
                        true => self.provision(agent).await,
                        false => Ok(()),
                    }
                });
                let (master_done, agents_done) = tokio::join!(master_side, join_all(agent_sides));
                first_error(std::iter::once(master_done).chain(agents_done).collect())
            }
        }
    }

    /// Boots `machines` (none: nothing to do) with one `vagrant up`; those in
    /// `first` are created by it.
    async fn boot(&self, machines: &[&str], first: &[&str]) -> anyhow::Result<()> {
        if machines.is_empty() {
            return Ok(());
        }
        let step = format!("boot {}", machines.join(", "));
        let up = self.vagrant.up(&step, machines);
        self.task(&step, self.marked(machines, first, up)).await
    }

    /// Runs a boot of `machines` with their boot markers set until it
    /// succeeds; those in `first` are created by it.
    async fn marked(
        &self,
        machines: &[&str],
        first: &[&str],
        boot: impl Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<()> {
        for machine in machines {
            let marker = if first.contains(machine) {
                FIRST_BOOT
            } else {
                ""
            };
            state::write_private(&self.state.boot_marker(machine), marker.as_bytes())?;
        }
        boot.await?;
        for machine in machines {
            remove_if_present(&self.state.boot_marker(machine))?;
        }
        Ok(())
    }

    /// Installs K3s on the master, or joins an agent.
    async fn provision(&self, machine: &str) -> anyhow::Result<()> {
        let step = match machine {
            "master" => "install K3s".to_string(),
            agent => format!("join {agent}"),
        };
        self.task(&step, self.vagrant.provision(&step, machine))
            .await
    }

    /// On a running cluster: waits for the nodes; one that stays NotReady or
    /// Unknown (its K3s service failed: a wrong token, a stale node
    /// password) is provisioned again, then waited for once more.
    async fn check_running(&self) -> anyhow::Result<()> {
        let first = self
            .wait_ready(REPAIR_AFTER.min(self.ready_timeout()))
            .await;
        let Some(laggards) = first
            .as_ref()
            .err()
            .and_then(|err| err.downcast_ref::<NotReady>())
            .map(|not_ready| not_ready.nodes.clone())
        else {
            return first;
        };
        self.reporter.note(&format!(
            "{} not Ready: provisioning again",
            laggards.join(", ")
        ));
        first_error(join_all(laggards.iter().map(|m| self.provision(m))).await)?;
        self.wait_ready(self.ready_timeout()).await
    }

    /// Reads the master's kubeconfig, makes it the cluster's, and merges it
    /// into the user's.
    async fn fetch_kubeconfig(&self) -> anyhow::Result<String> {
        let k3s_yaml = self.vagrant.master_kubeconfig("kubeconfig").await?;
        let server = format!("https://{}:{API_PORT}", self.config.cluster.master_ip);
        let ours = kubeconfig::rewrite(&k3s_yaml, &server, &self.config.deploy.namespace)?;
        state::write_private(&self.state.kubeconfig(), ours.as_bytes())?;
        self.install_user_context(&ours).await
    }

    async fn install_user_context(&self, ours: &str) -> anyhow::Result<String> {
        let path = kubeconfig::user_path()?;
        let changed = kubeconfig::install(&path, ours).with_context(|| {
            format!(
                "the cluster's own kubeconfig is {}; fix the problem and run `orchestrator create` again",
                self.state.kubeconfig().display()
            )
        })?;
        let verb = if changed { "merged into" } else { "present in" };
        Ok(format!("context {CONTEXT} {verb} {}", path.display()))
    }

    fn ready_timeout(&self) -> Duration {
        Duration::from_secs(self.config.cluster.ready_timeout_secs)
    }

    /// Watches the nodes until every machine's node is Ready with a heartbeat
    /// newer than the command's start, for at most `timeout`.
    async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let id = "nodes Ready";
        let work = async {
            let client = cluster_client(&self.state.kubeconfig()).await?;
            let names = self.config.cluster.machines();
            nodes::wait_ready(client, &names, self.started, timeout, |ready, total| {
                self.reporter
                    .progress(id, &format!("{ready}/{total} Ready"));
            })
            .await?;
            anyhow::Ok(format!("{} Ready", names.len()))
        };
        self.task(id, work).await.map(drop)
    }

    /// Runs `work` as a reported task named `label`.
    async fn task<T: TaskResult, E: Into<anyhow::Error>>(
        &self,
        label: &str,
        work: impl Future<Output = Result<T, E>>,
    ) -> anyhow::Result<T> {
        self.reporter.started(label, label);
        let result = work.await.map_err(Into::into);
        match &result {
            Ok(value) => self.reporter.finished(label, true, &value.summary()),
            Err(err) => {
                let first_line = err
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                self.reporter.finished(label, false, &first_line);
            }
        }
        result
    }
}

/// What a task's last word is when it succeeds.
trait TaskResult {
    fn summary(&self) -> String;
}

impl TaskResult for () {
    fn summary(&self) -> String {
        "done".into()
    }
}

impl TaskResult for bool {
    fn summary(&self) -> String {
        (if *self { "done" } else { "nothing to change" }).into()
    }
}

impl TaskResult for String {
    fn summary(&self) -> String {
        self.clone()
    }
}

/// Keeps the join token if there is one, else writes a new random one (0600).
/// Returns whether it wrote one.
pub fn ensure_token(path: &Path) -> anyhow::Result<bool> {
    match std::fs::read_to_string(path) {
        Ok(token) if !token.trim().is_empty() => return Ok(false),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(anyhow::Error::new(err).context(format!("cannot read {}", path.display())));
        }
    }
    state::write_private(path, format!("{}\n", state::random_hex(32)).as_bytes())?;
    Ok(true)
}

/// A client for the cluster's own kubeconfig that does not wait for an
/// answer: the watch retries while the API server comes up.
async fn cluster_client(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig =
        Kubeconfig::read_from(path).with_context(|| format!("cannot read {}", path.display()))?;
    let options = KubeConfigOptions {
        context: Some(CONTEXT.into()),
        ..KubeConfigOptions::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .with_context(|| format!("{} is not a usable kubeconfig", path.display()))?;
    config.connect_timeout = Some(Duration::from_secs(5));
    Ok(kube::Client::try_from(config)?)
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(anyhow::Error::new(err).context(format!("cannot remove {}", path.display())))
        }
        _ => Ok(()),
    }
}

/// Adds how to repair them to a wait that ended with nodes not Ready.
fn repair_hint(err: anyhow::Error, hint: &str) -> anyhow::Error {
    match err.downcast::<NotReady>() {
        Ok(not_ready) => anyhow::anyhow!("{not_ready}\n{hint}"),
        Err(other) => other,
    }
}

/// Waits for every concurrent step, then fails with the first failure (each
/// one has been reported as its task ended).
fn first_error<T>(results: Vec<anyhow::Result<T>>) -> anyhow::Result<()> {
    results
        .into_iter()
        .find_map(Result::err)
        .map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_created_once_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".orchestrator/token");
        assert!(ensure_token(&path).unwrap());
        let token = std::fs::read_to_string(&path).unwrap();
        assert_eq!(token.trim().len(), 64);
        assert!(token.trim().bytes().all(|b| b.is_ascii_hexdigit()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!ensure_token(&path).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), token);
    }

    #[test]
    fn an_empty_token_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "\n").unwrap();
        assert!(ensure_token(&path).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim().len(), 64);
    }

    #[test]
    fn first_error_waits_for_all_and_keeps_the_first() {
        let results = vec![
            Ok(()),
            Err(anyhow::anyhow!("agent")),
            Err(anyhow::anyhow!("agent-2")),
        ];
        assert_eq!(first_error(results).unwrap_err().to_string(), "agent");
        assert!(first_error::<()>(vec![Ok(()), Ok(())]).is_ok());
    }
}
