use std::io::IsTerminal;

use orchestrator::error::Failure;
use orchestrator::lifecycle::VmCluster;

use super::Context;
use crate::cli::DestroyArgs;

pub async fn run(ctx: &Context, args: DestroyArgs) -> anyhow::Result<()> {
    if !args.yes && !confirmed(&ctx.config.cluster.machines()).await? {
        println!("nothing destroyed");
        return Ok(());
    }
    let cluster = VmCluster::new(
        &ctx.config,
        &ctx.project_dir,
        &ctx.state,
        ctx.reporter.as_ref(),
    );
    let destroyed = cluster.destroy().await?;
    if let Some(path) = destroyed.context_removed_from {
        println!("removed the orchestrator context from {}", path.display());
    }
    if let Some(path) = destroyed.kept_credentials {
        println!(
            "kept {} (the stack's credentials, reused by the next deploy; delete it for new ones)",
            path.display()
        );
    }
    println!("cluster destroyed");
    Ok(())
}

/// Asks on a terminal; anywhere else `--yes` is required.
async fn confirmed(machines: &[String]) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(
            "destroy deletes the VMs and their disks: pass --yes to confirm (stdin is not a terminal, so it cannot ask)"
                .into(),
        )
        .into());
    }
    print!(
        "Destroy the VMs {} and everything on them? [y/N] ",
        machines.join(", ")
    );
    std::io::Write::flush(&mut std::io::stdout())?;
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await??;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
