use orchestrator::lifecycle::{Created, VmCluster};
use orchestrator::preflight::{self, Scope};

use super::Context;

pub async fn run(ctx: &Context) -> anyhow::Result<()> {
    preflight::require(&ctx.config, Scope::Create, ctx.reporter.as_ref()).await?;
    let cluster = VmCluster::new(
        &ctx.config,
        &ctx.project_dir,
        &ctx.state,
        ctx.reporter.as_ref(),
    );
    match cluster.create().await? {
        Created::Built => println!("cluster created"),
        Created::AlreadyRunning => println!("cluster created (already running, nothing changed)"),
    }
    Ok(())
}
