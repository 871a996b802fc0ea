use orchestrator::lifecycle::{Cluster, ClusterStatus};
use orchestrator::stack::{self, Stack};
use serde::Serialize;

use super::Context;
use crate::cli::StatusArgs;

/// Everything `status` shows: the cluster's part, and the stack's
/// (workloads, autoscalers, the gateway's URL) when the API answers.
#[derive(Serialize)]
struct Report {
    #[serde(flatten)]
    cluster: ClusterStatus,
    stack: Option<Stack>,
}

pub async fn run(ctx: &Context, args: StatusArgs) -> anyhow::Result<()> {
    let cluster = Cluster::new(
        &ctx.config,
        &ctx.project_dir,
        &ctx.state,
        ctx.reporter.as_ref(),
    );
    let (cluster, connection) = cluster.status(&args.target.into()).await?;
    let stack = match connection {
        Some(connection) => {
            Some(stack::status(&connection.client, &ctx.config.deploy.namespace).await?)
        }
        None => None,
    };
    let report = Report { cluster, stack };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print_cluster(&report.cluster);
    if let Some(stack) = &report.stack {
        print_stack(stack);
    }
    Ok(())
}

fn print_stack(stack: &Stack) {
    if stack.workloads.is_empty() {
        println!(
            "stack: nothing deployed in namespace {} (run `orchestrator deploy`)",
            stack.namespace
        );
        return;
    }
    println!("stack (namespace {}):", stack.namespace);
    for w in &stack.workloads {
        let mark = if w.ready >= w.desired {
            "ok"
        } else {
            "NOT READY"
        };
        println!(
            "  {:<14} {:<12} {}/{} ready  {mark}",
            w.name, w.kind, w.ready, w.desired
        );
    }
    for name in &stack.missing {
        println!("  {name:<14} not deployed");
    }
    if !stack.autoscalers.is_empty() {
        println!("autoscalers:");
    }
    for a in &stack.autoscalers {
        let cpu = a
            .cpu_now
            .map_or("<unknown>".to_string(), |c| format!("{c}%"));
        let target = a.cpu_target.map_or("-".to_string(), |c| format!("{c}%"));
        println!(
            "  {:<14} {} replicas ({}..{}), cpu {cpu} / target {target}",
            a.name, a.replicas, a.min, a.max
        );
    }
    match &stack.gateway {
        Some(url) => println!("gateway: {url}"),
        None => println!("gateway: no address yet"),
    }
}

fn print_cluster(status: &ClusterStatus) {
    if let Some(why) = &status.machines_error {
        println!("VMs: unknown ({why})");
    } else {
        println!("VMs:");
    }
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
