use orchestrator::deploy::{self, Plan, cluster::Applier};
use orchestrator::kubeapi;
use orchestrator::process::Runner;

use super::Context;
use crate::cli::PlanArgs;

pub async fn run(ctx: &Context, args: PlanArgs) -> anyhow::Result<()> {
    let project = super::project(ctx);
    let connection = kubeapi::connect(&args.target.into()).await?;
    let cluster = Applier::new(connection.client, &ctx.config.deploy.namespace);
    let runner = Runner::new(ctx.state.logs());
    let plan = deploy::plan(&project, &cluster, None, &[], &runner).await?;
    println!(
        "plan for namespace {} on {}",
        ctx.config.deploy.namespace, connection.description
    );
    print(&plan);
    Ok(())
}

/// The waves with each object's change, the prunes and the images.
pub fn print(plan: &Plan) {
    if !plan.namespace_exists {
        println!(
            "the namespace does not exist yet: every object in it will be created \
             (the API server checks them once it exists)"
        );
    }
    for (index, wave) in plan.waves.iter().enumerate() {
        println!("wave {}: {}", index + 1, wave.name);
        for (key, change) in &wave.objects {
            println!("  {:<10} {key}", change.as_str());
        }
    }
    if !plan.prune.is_empty() {
        println!("prune (no longer in the manifests):");
        for key in &plan.prune {
            println!("  {:<10} {key}", "prune");
        }
    }
    match plan.platforms.as_slice() {
        [] => println!("images:"),
        platforms => println!("images (for the nodes' {}):", platforms.join(", ")),
    }
    for image in &plan.images {
        println!("  {image}");
    }
}
