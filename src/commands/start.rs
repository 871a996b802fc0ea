use orchestrator::lifecycle::VmCluster;
use orchestrator::preflight::{self, Scope};

use super::Context;

pub async fn run(ctx: &Context) -> anyhow::Result<()> {
    preflight::require(&ctx.config, Scope::Start, ctx.reporter.as_ref()).await?;
    VmCluster::new(
        &ctx.config,
        &ctx.project_dir,
        &ctx.state,
        ctx.reporter.as_ref(),
    )
    .start()
    .await?;
    println!("cluster started");
    Ok(())
}
