use std::time::Duration;

use orchestrator::deploy::{self, Options, Project, cluster::Applier, images};
use orchestrator::kubeapi;
use orchestrator::process::Runner;

use super::{Context, plan};
use crate::cli::DeployArgs;

pub async fn run(ctx: &Context, args: DeployArgs) -> anyhow::Result<()> {
    let mut config = ctx.config.clone();
    config.registry.sideload |= args.sideload;
    let project = Project {
        config: &config,
        ..super::project(ctx)
    };
    let runner = Runner::new(ctx.state.logs());
    if args.dry_run {
        let connection = kubeapi::connect(&args.target.into()).await?;
        let cluster = Applier::new(connection.client, &ctx.config.deploy.namespace);
        let plan = deploy::plan(
            &project,
            &cluster,
            args.only.as_deref(),
            &args.with,
            &runner,
        )
        .await?;
        plan::print(&plan);
        match plan.namespace_exists {
            true => println!("dry run: the API server accepted every object; nothing was changed"),
            false => println!("dry run: nothing was changed"),
        }
        return Ok(());
    }
    let options = Options {
        skip_build: args.skip_build,
        skip_push: args.skip_push,
        only: args.only,
        timeout: Duration::from_secs(args.timeout.unwrap_or(ctx.config.deploy.timeout_secs)),
        platforms: images::parse_platforms(&args.platform)?,
        with: args.with,
    };
    let release = deploy::prepare(&project, &options, &runner).await?;
    let connection = kubeapi::connect(&args.target.into()).await?;
    let cluster = Applier::new(connection.client, &ctx.config.deploy.namespace);
    ctx.reporter
        .note(&format!("deploying to {}", connection.description));
    let outcome = deploy::deploy(
        &project,
        release,
        &cluster,
        &options,
        &runner,
        ctx.reporter.as_ref(),
    )
    .await?;
    println!(
        "deployed {} objects in {} waves in {:.1}s{}",
        outcome.objects,
        outcome.waves,
        outcome.elapsed.as_secs_f64(),
        match outcome.pruned.len() {
            0 => String::new(),
            n => format!(", pruned {n}"),
        }
    );
    match outcome.gateway {
        Some(url) => println!("gateway: {url}"),
        None => println!("gateway: no address yet (see `orchestrator status`)"),
    }
    for addon in &options.with {
        println!("{}", addon.how_to_open(&ctx.config.deploy.namespace));
    }
    Ok(())
}
