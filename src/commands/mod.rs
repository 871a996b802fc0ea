//! One module per subcommand, each a `run(ctx, args)` that turns arguments
//! into a call of the library and prints the command's result.

mod completions;
mod create;
mod dashboard;
mod demo;
mod deploy;
mod destroy;
mod doctor;
mod logs;
mod plan;
mod start;
mod status;
mod stop;
mod verify;

use std::path::PathBuf;

use orchestrator::config::{self, Config};
use orchestrator::kubeapi::Target;
use orchestrator::reporter::Reporter;
use orchestrator::state::State;

use crate::cli::{Cli, ClusterTarget, Command};
use crate::ui::{self, Verbosity};

/// What every command gets: the validated configuration and where to report.
pub struct Context {
    pub config: Config,
    /// The directory of the configuration file; relative paths start here.
    pub project_dir: PathBuf,
    pub state: State,
    pub reporter: Box<dyn Reporter>,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Completions(args) = &cli.command {
        return completions::run(args);
    }
    let verbosity = match (cli.quiet, cli.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    };
    let loaded = config::load(cli.config.as_deref())?;
    let ctx = Context {
        state: State::new(&loaded.project_dir),
        config: loaded.config,
        project_dir: loaded.project_dir,
        reporter: ui::reporter(verbosity),
    };
    match cli.command {
        Command::Create => create::run(&ctx).await,
        Command::Start => start::run(&ctx).await,
        Command::Stop => stop::run(&ctx).await,
        Command::Destroy(args) => destroy::run(&ctx, args).await,
        Command::Status(args) => status::run(&ctx, args).await,
        Command::Deploy(args) => deploy::run(&ctx, args).await,
        Command::Plan(args) => plan::run(&ctx, args).await,
        Command::Verify(args) => verify::run(&ctx, args).await,
        Command::Logs(args) => logs::run(&ctx, args).await,
        Command::Doctor(args) => doctor::run(&ctx, args).await,
        Command::Dashboard(args) => dashboard::run(&ctx, args).await,
        Command::Demo(args) => demo::run(&ctx, args).await,
        Command::Completions(_) => unreachable!("handled before the configuration is loaded"),
    }
}

impl From<ClusterTarget> for Target {
    fn from(target: ClusterTarget) -> Self {
        Target {
            kubeconfig: target.kubeconfig,
            context: target.context,
        }
    }
}

/// The deploy inputs of the loaded configuration.
fn project(ctx: &Context) -> orchestrator::deploy::Project<'_> {
    orchestrator::deploy::Project {
        config: &ctx.config,
        dir: &ctx.project_dir,
        state: &ctx.state,
    }
}
