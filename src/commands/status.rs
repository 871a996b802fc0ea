use orchestrator::lifecycle::{Cluster, ClusterStatus};
use serde::Serialize;

use super::Context;
use crate::cli::StatusArgs;

/// Everything `status` shows. The stack's part (workloads, autoscalers, the
/// gateway's URL) goes beside the cluster's as its own field.
#[derive(Serialize)]
struct Report {
    #[serde(flatten)]
    cluster: ClusterStatus,
}

pub async fn run(ctx: &Context, args: StatusArgs) -> anyhow::Result<()> {
    let cluster = Cluster::new(
        &ctx.config,
        &ctx.project_dir,
        &ctx.state,
        ctx.reporter.as_ref(),
    );
    let report = Report {
        cluster: cluster.status(&args.target.into()).await?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print_cluster(&report.cluster);
    Ok(())
}

fn print_cluster(status: &ClusterStatus) {
    println!("VMs:");
    for machine in &status.machines {
        println!("  {:<10} {}", machine.name, machine.state);
    }
    match (&status.api, &status.api_error) {
        (_, Some(why)) => println!("nodes: unknown ({why})"),
        (api, None) => {
            println!(
                "nodes{}:",
                api.as_ref()
                    .map_or(String::new(), |api| format!(" ({api})"))
            );
            for node in &status.nodes {
                let ready = if node.ready { "Ready" } else { "NotReady" };
                let roles = if node.roles.is_empty() {
                    "<none>".to_string()
                } else {
                    node.roles.join(",")
                };
                println!(
                    "  {:<10} {:<9} {:<22} {}",
                    node.name, ready, roles, node.version
                );
            }
        }
    }
}
