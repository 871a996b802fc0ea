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
use std::sync::Mutex;

use orchestrator::config::{self, Config};
use orchestrator::kubeapi::Target;
use orchestrator::reporter::Reporter;
use orchestrator::state::{RunLock, State};

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
    if changes_the_project(&cli.command) {
        let lock = ctx
            .state
            .lock(|holder| {
                ctx.reporter.note(&match holder {
                    Some(pid) => format!("waiting for another orchestrator run (pid {pid})"),
                    None => "waiting for another orchestrator run".into(),
                })
            })
            .await?;
        *RUN_LOCK.lock().unwrap_or_else(|e| e.into_inner()) = Some(lock);
    }
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

/// The project's lock, held past the command's end: an interrupted command's
/// children are still being stopped when its future is gone, and no other
/// run may start before they are (`main` calls [`release_lock`] then).
static RUN_LOCK: Mutex<Option<RunLock>> = Mutex::new(None);

/// Lets the next run of the project start.
pub fn release_lock() {
    RUN_LOCK.lock().unwrap_or_else(|e| e.into_inner()).take();
}

/// Whether `command` changes the VMs, the cluster or `.orchestrator/`, and
/// so must wait for another such run of the project. `verify` does: it
/// scales billing-app down and up again, which a deploy would fight. What
/// only reads (`status`, `plan`, `logs`, `doctor`, the dashboard) or only
/// sends requests (`demo`) never waits.
fn changes_the_project(command: &Command) -> bool {
    match command {
        Command::Create
        | Command::Start
        | Command::Stop
        | Command::Destroy(_)
        | Command::Verify(_) => true,
        Command::Deploy(args) => !args.dry_run,
        Command::Status(_)
        | Command::Plan(_)
        | Command::Logs(_)
        | Command::Doctor(_)
        | Command::Completions(_)
        | Command::Dashboard(_)
        | Command::Demo(_) => false,
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
