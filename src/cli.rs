//! The command line as plain data (clap derive). Nothing here runs anything:
//! `main` turns it into a validated configuration before any command starts.

use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Args, Parser, Subcommand};
use orchestrator::deploy::addons::Addon;

#[derive(Debug, Parser)]
#[command(
    name = "orchestrator",
    version,
    about = "A K3s cluster of Vagrant VMs and the microservices stack on it, in one command each",
    propagate_version = true,
    after_help = exit_codes()
)]
pub struct Cli {
    /// Configuration file [default: the nearest orchestrator.toml here or above]
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

/// The exit codes, for `--help`.
fn exit_codes() -> String {
    let rows: Vec<String> = orchestrator::error::exit::TABLE
        .iter()
        .map(|(code, meaning)| format!("  {code:>3}  {}", meaning.replace('`', "")))
        .collect();
    format!("Exit codes:\n{}", rows.join("\n"))
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
    /// Check that this host can run the cluster and build the images, and say how to fix what cannot
    Doctor(DoctorArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Serve a live, read-only web page of the cluster, the stack, its logs and the last audit
    Dashboard(DashboardArgs),
    /// Show the stack at work, for an audit
    Demo(DemoArgs),
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
    /// Build for these platforms, e.g. linux/amd64,linux/arm64 [default: the nodes' platforms]
    #[arg(long, value_name = "OS/ARCH", value_delimiter = ',')]
    pub platform: Vec<String>,
    /// Import the images into every node's containerd instead of pushing them (no registry needed) [config: registry.sideload]
    #[arg(long)]
    pub sideload: bool,
    /// Do not push the images
    #[arg(long)]
    pub skip_push: bool,
    /// Deploy only this component (and nothing is pruned)
    #[arg(long, value_name = "APP")]
    pub only: Option<String>,
    /// Also deploy an extra: `dashboard` (Headlamp, read-only); a deploy without it removes it
    #[arg(long = "with", value_name = "ADDON", value_parser = addon_names())]
    pub with: Vec<Addon>,
    /// Seconds to wait for each wave to become ready [default: deploy.timeout_secs]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(orchestrator::config::TIMEOUT_SECS))]
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
    /// The app (a component of the stack)
    #[arg(value_parser = component_names())]
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

/// The stack's components, for help, completion and validation.
fn component_names() -> PossibleValuesParser {
    let values = orchestrator::stack::COMPONENTS
        .iter()
        .map(|c| PossibleValue::new(c.name).help(c.kind));
    PossibleValuesParser::new(values)
}

/// The addons `deploy --with` knows.
fn addon_names() -> impl clap::builder::TypedValueParser<Value = Addon> {
    PossibleValuesParser::new(Addon::ALL.map(Addon::name))
        .map(|name| name.parse::<Addon>().expect("a listed addon"))
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the findings as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Port on 127.0.0.1 [default: any free port]
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Do not open the page in a browser, only print its URL
    #[arg(long)]
    pub no_open: bool,
    #[command(flatten)]
    pub target: ClusterTarget,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(subcommand)]
    pub demo: Demo,
}

#[derive(Debug, Subcommand)]
pub enum Demo {
    /// Send load at the gateway for a while and show the autoscalers scale out
    Hpa(HpaDemoArgs),
}

#[derive(Debug, Args)]
pub struct HpaDemoArgs {
    /// How long to send load, e.g. 60s, 2m
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub duration: String,
    /// Requests per second
    #[arg(long, default_value_t = 50, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rate: u32,
    /// The gateway's base URL [default: from the api-gateway LoadBalancer Service]
    #[arg(long, value_name = "URL")]
    pub gateway_url: Option<String>,
    #[command(flatten)]
    pub target: ClusterTarget,
}
