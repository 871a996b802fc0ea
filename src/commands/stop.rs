use orchestrator::lifecycle::VmCluster;

use super::Context;

pub async fn run(ctx: &Context) -> anyhow::Result<()> {
    VmCluster::new(
        &ctx.config,
        &ctx.project_dir,
        &ctx.state,
        ctx.reporter.as_ref(),
    )
    .stop()
    .await?;
    println!("cluster stopped");
    Ok(())
}
