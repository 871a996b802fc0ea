use orchestrator::lifecycle::Cluster;

use super::Context;

pub async fn run(ctx: &Context) -> anyhow::Result<()> {
    Cluster::new(
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
