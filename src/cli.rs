//! The command line as plain data (clap derive). Nothing here runs anything:
//! `main` turns it into a validated configuration before any command starts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "orchestrator",
    version,
    about = "A K3s cluster of Vagrant VMs and the microservices stack on it, in one command each",
    propagate_version = true
)]
pub struct Cli {
    /// Configuration file [default: ./orchestrator.toml]
    #[arg(long, global = true, env = "ORCHESTRATOR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print only errors and the final result
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print every event as its own line, even on a terminal
    #[arg(short, long, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the cluster: boot the VMs, install K3s, fetch the kubeconfig, wait for Ready nodes
    Create,
    /// Boot a stopped cluster and wait for its nodes
    Start,
    /// Halt the VMs (agents first); their disks are kept
    Stop,
    /// Delete the VMs, the `orchestrator` kubeconfig context and the local cluster state
    Destroy(DestroyArgs),
    /// Show the VMs, the nodes and the deployed stack
    Status(StatusArgs),
    /// Build, push and roll out the stack, wave by wave
    Deploy(DeployArgs),
    /// Show what `deploy` would do, touching nothing
    Plan(PlanArgs),
    /// Check the running stack against the exercise's audit
    Verify(VerifyArgs),
    /// Print the logs of every replica of an app
    Logs(LogsArgs),
    /// Check the tools this host needs, and say how to install the missing ones
    Doctor,
    /// Print a shell completion script
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print machine-readable JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: ClusterTarget,
}

/// Which cluster to talk to, as kubectl chooses it.
#[derive(Debug, Args, Clone, Default)]
pub struct ClusterTarget {
    /// Kubeconfig file [default: $KUBECONFIG, else ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context [default: `orchestrator` if present, else the current context]
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Do not build the images (use the tags of the current sources)
    #[arg(long)]
    pub skip_build: bool,
    /// Do not push the images
    #[arg(long)]
    pub skip_push: bool,
    /// Deploy only this component (and nothing is pruned)
    #[arg(long, value_name = "APP")]
    pub only: Option<String>,
    /// Seconds to wait for each wave to become ready [default: deploy.timeout_secs]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Build nothing, change nothing: let the API server validate every object
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub target: ClusterTarget,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub target: ClusterTarget,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The gateway's base URL [default: from the api-gateway LoadBalancer Service]
    #[arg(long, value_name = "URL")]
    pub gateway_url: Option<String>,
    /// Write the evidence report as Markdown to FILE
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print the results as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: ClusterTarget,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The app: inventory-app, billing-app, api-gateway, inventory-db, billing-db or rabbitmq
    pub app: String,
    /// Keep streaming new lines
    #[arg(short, long)]
    pub follow: bool,
    /// Only lines newer than this, e.g. 30s, 5m, 2h
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    #[command(flatten)]
    pub target: ClusterTarget,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}
