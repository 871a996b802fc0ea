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
//! That wait is why a failed master ends the command at once: the agents'
//! boots and joins still under way are stopped (their runs dropped, their
//! vagrant stopped) rather than left polling a dead API for minutes.
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

use crate::config::{Config, MASTER, Provider};
use crate::k3s_release::K3sRelease;
use crate::kubeapi::{self, CONTEXT};
use crate::kubeconfig;
use crate::nodes::{self, NotReady};
use crate::prereq;
use crate::process::Runner;
use crate::reporter::{Reporter, Task};
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

pub struct VmCluster<'a> {
    config: &'a Config,
    state: &'a State,
    vagrant: Vagrant,
    reporter: &'a dyn Reporter,
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

impl<'a> VmCluster<'a> {
    pub fn new(
        config: &'a Config,
        project_dir: &Path,
        state: &'a State,
        reporter: &'a dyn Reporter,
    ) -> Self {
        let vagrant = Vagrant::new(config, project_dir, state, Runner::new(state.logs()));
        VmCluster {
            config,
            state,
            vagrant,
            reporter,
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
            .partition(|m| m.name == MASTER);
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

    /// Whether vagrant and the provider's tools are installed.
    pub fn require_tools(&self) -> Result<(), crate::error::Failure> {
        prereq::require(&prereq::cluster_tools(self.config.cluster.provider))
    }

    /// The configured machines in order, the master first, with the states
    /// `vagrant status` gives.
    pub async fn machines(&self) -> anyhow::Result<Vec<Machine>> {
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

    /// Carries out the [`BootPlan`] of `machines`, provisioning every
    /// machine when `provision` is set: the master's provisioning runs beside
    /// the agents' boots and joins (see [`VmCluster::beside_master`]).
    async fn bring_up(&self, machines: &[Machine], provision: bool) -> anyhow::Result<()> {
        let plan = BootPlan::new(self.config.cluster.provider, machines, |m| {
            self.unfinished(m)
        });
        if !plan.recreate.is_empty() {
            let step = format!(
                "remove {} (its first boot did not finish)",
                plan.recreate.join(", ")
            );
            self.task(&step, self.vagrant.destroy(&step, &plan.recreate))
                .await?;
        }
        if !plan.reload.is_empty() {
            let step = format!("reboot {}", plan.reload.join(", "));
            let reload = self.vagrant.reload(&step, &plan.reload);
            self.task(&step, self.marked(&plan.reload, &[], reload))
                .await?;
        }
        self.boot(&plan.boot_first, &plan.created).await?;
        let provisioned = |machine| async move {
            match provision {
                true => self.provision(machine).await,
                false => Ok(()),
            }
        };
        let plan = &plan;
        let agents = plan.agents.iter().map(|&agent| async move {
            if plan.boot_beside.contains(&agent) {
                self.boot(&[agent], &plan.created).await?;
            }
            provisioned(agent).await
        });
        self.beside_master(provisioned(plan.master), agents.collect())
            .await
    }

    /// Runs the master's work and each agent's side by side. The agents'
    /// joins wait for the master's API, so a failed master ends this at once
    /// with its error, the agents' unfinished work dropped (which stops their
    /// vagrant; a boot's marker makes the next run repair it). Else it waits
    /// for everything and fails with the first failure.
    async fn beside_master(
        &self,
        master: impl Future<Output = anyhow::Result<()>>,
        agents: Vec<impl Future<Output = anyhow::Result<()>>>,
    ) -> anyhow::Result<()> {
        let mut master = std::pin::pin!(master);
        let mut agents = std::pin::pin!(join_all(agents));
        let (master_done, agents_done) = tokio::select! {
            done = &mut master => match done {
                Ok(()) => (Ok(()), agents.await),
                Err(err) => {
                    self.reporter
                        .note("the master failed: stopping the agents' work (they wait for its API)");
                    return Err(err);
                }
            },
            agents_done = &mut agents => (master.await, agents_done),
        };
        first_error(std::iter::once(master_done).chain(agents_done).collect())
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
            MASTER => "install K3s".to_string(),
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
        let master = async {
            match laggards.iter().any(|m| m == MASTER) {
                true => self.provision(MASTER).await,
                false => Ok(()),
            }
        };
        let agents = laggards.iter().filter(|m| *m != MASTER);
        let agents = agents.map(|agent| self.provision(agent));
        self.beside_master(master, agents.collect()).await?;
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

    /// Watches the nodes until every machine's node is Ready with its lease
    /// renewed during the wait, for at most `timeout`.
    async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let id = "nodes Ready";
        let work = async {
            // Not tried first: the watch retries while the API server comes up.
            let target = kubeapi::Target {
                kubeconfig: Some(self.state.kubeconfig()),
                context: Some(CONTEXT.into()),
            };
            let client = kubeapi::client(&target).await?.client;
            let names = self.config.cluster.machines();
            nodes::wait_ready(client, &names, timeout, |ready, total| {
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
        let task = Task::start(self.reporter, label, label);
        let result = work.await.map_err(Into::into);
        match &result {
            Ok(value) => task.finish(true, &value.summary()),
            // The first line: the whole error follows the task list.
            Err(err) => task.finish(false, err.to_string().lines().next().unwrap_or_default()),
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

/// What `bring_up` does to the machines, decided from their states and the
/// boots they left unfinished alone: in this order, the machines destroyed,
/// those rebooted, those booted together by one `vagrant up`, then those
/// booted each on its own beside the master's provisioning (before their
/// own). Nothing is booted that runs already.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BootPlan<'m> {
    master: &'m str,
    agents: Vec<&'m str>,
    /// Destroyed first: their first boot did not finish, so their private
    /// network was never configured; their boot creates them again.
    recreate: Vec<&'m str>,
    /// Rebooted (`vagrant reload`): a later boot left them running without
    /// their private address.
    reload: Vec<&'m str>,
    /// Booted together, before anything else: with libvirt every machine
    /// that is down (one lock, the box uploaded once); with VirtualBox the
    /// master alone (its boot creates the host-only network).
    boot_first: Vec<&'m str>,
    /// Agents booted each by its own `vagrant up` beside the master's
    /// provisioning (VirtualBox has no `--parallel`).
    boot_beside: Vec<&'m str>,
    /// The machines their boot creates (their marker says "first boot").
    created: Vec<&'m str>,
}

impl<'m> BootPlan<'m> {
    /// `machines` in the configured order, the master first.
    fn new(
        provider: Provider,
        machines: &'m [Machine],
        unfinished: impl Fn(&Machine) -> Option<Unfinished>,
    ) -> Self {
        let (first, rest) = machines
            .split_first()
            .expect("the master is always configured");
        let (mut recreate, mut reload) = (Vec::new(), Vec::new());
        for machine in machines {
            match unfinished(machine) {
                Some(Unfinished::FirstBoot) => recreate.push(machine.name.as_str()),
                Some(Unfinished::Boot) if machine.is_running() => {
                    reload.push(machine.name.as_str())
                }
                _ => {}
            }
        }
        let recreated = |m: &Machine| recreate.contains(&m.name.as_str());
        let down = |m: &&Machine| !m.is_running() || recreated(m);
        let names = |ms: Vec<&'m Machine>| ms.into_iter().map(|m| m.name.as_str()).collect();
        let created = names(
            machines
                .iter()
                .filter(|m| !m.is_created() || recreated(m))
                .collect(),
        );
        let (boot_first, boot_beside) = match provider {
            Provider::Libvirt => (names(machines.iter().filter(down).collect()), Vec::new()),
            Provider::Virtualbox => (
                names(std::iter::once(first).filter(down).collect()),
                names(rest.iter().filter(down).collect()),
            ),
        };
        BootPlan {
            master: &first.name,
            agents: names(rest.iter().collect()),
            recreate,
            reload,
            boot_first,
            boot_beside,
            created,
        }
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

    /// The machines in order, each with its `vagrant status` state.
    fn machines(states: &[(&str, &str)]) -> Vec<Machine> {
        states
            .iter()
            .map(|(name, state)| Machine {
                name: name.to_string(),
                state: state.to_string(),
            })
            .collect()
    }

    fn plan<'m>(
        provider: Provider,
        machines: &'m [Machine],
        unfinished: &[(&str, Unfinished)],
    ) -> BootPlan<'m> {
        BootPlan::new(provider, machines, |m| {
            unfinished
                .iter()
                .find(|(name, _)| *name == m.name)
                .map(|(_, u)| *u)
        })
    }

    #[test]
    fn a_new_cluster_boots_the_master_alone_first_on_virtualbox_and_all_at_once_on_libvirt() {
        let new = machines(&[
            ("master", "not_created"),
            ("agent", "not_created"),
            ("agent-2", "not_created"),
        ]);
        let all = vec!["master", "agent", "agent-2"];
        assert_eq!(
            plan(Provider::Virtualbox, &new, &[]),
            BootPlan {
                master: "master",
                agents: vec!["agent", "agent-2"],
                recreate: vec![],
                reload: vec![],
                boot_first: vec!["master"],
                boot_beside: vec!["agent", "agent-2"],
                created: all.clone(),
            }
        );
        assert_eq!(
            plan(Provider::Libvirt, &new, &[]),
            BootPlan {
                master: "master",
                agents: vec!["agent", "agent-2"],
                recreate: vec![],
                reload: vec![],
                boot_first: all.clone(),
                boot_beside: vec![],
                created: all,
            }
        );
    }

    #[test]
    fn broken_boots_are_repaired_before_anything_boots() {
        // The master's first boot was interrupted; agent's later boot was
        // (it runs, without its network); agent-2 was halted.
        let left = machines(&[
            ("master", "running"),
            ("agent", "running"),
            ("agent-2", "poweroff"),
        ]);
        let broken = [
            ("master", Unfinished::FirstBoot),
            ("agent", Unfinished::Boot),
        ];
        for provider in [Provider::Virtualbox, Provider::Libvirt] {
            let plan = plan(provider, &left, &broken);
            assert_eq!(plan.recreate, ["master"], "{provider:?}");
            assert_eq!(plan.reload, ["agent"], "{provider:?}");
            assert_eq!(plan.created, ["master"], "{provider:?}");
            let booted = match provider {
                Provider::Virtualbox => (vec!["master"], vec!["agent-2"]),
                Provider::Libvirt => (vec!["master", "agent-2"], vec![]),
            };
            assert_eq!((plan.boot_first, plan.boot_beside), booted, "{provider:?}");
        }
    }

    #[test]
    fn running_machines_are_not_booted_and_a_halted_one_is_not_reloaded() {
        let up = machines(&[("master", "running"), ("agent", "running")]);
        for provider in [Provider::Virtualbox, Provider::Libvirt] {
            let plan = plan(provider, &up, &[]);
            assert!(
                plan.boot_first.is_empty() && plan.boot_beside.is_empty(),
                "{plan:?}"
            );
            assert!(plan.recreate.is_empty() && plan.reload.is_empty());
        }
        // A later boot of the master failed, and the VM is off now: a plain boot.
        let off = machines(&[("master", "poweroff"), ("agent", "running")]);
        for provider in [Provider::Virtualbox, Provider::Libvirt] {
            let plan = plan(provider, &off, &[("master", Unfinished::Boot)]);
            assert!(plan.reload.is_empty(), "{plan:?}");
            assert_eq!(plan.boot_first, ["master"], "{provider:?}");
            assert!(plan.boot_beside.is_empty() && plan.created.is_empty());
        }
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
