use orchestrator::kubeapi::{self, Target};
use orchestrator::lifecycle::VmCluster;
use orchestrator::nodes::{self, NodeSummary};
use orchestrator::stack::{self, Stack};
use orchestrator::vagrant::Machine;
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

/// The cluster's part of `status`: the VMs, and the nodes when the API answers.
#[derive(Debug, Clone, Serialize)]
struct ClusterStatus {
    machines: Vec<Machine>,
    /// Why there are no VMs to show.
    #[serde(skip_serializing_if = "Option::is_none")]
    machines_error: Option<String>,
    nodes: Vec<NodeSummary>,
    /// Which API server `nodes` come from.
    #[serde(skip_serializing_if = "Option::is_none")]
    api: Option<String>,
    /// Why there are no nodes to show.
    #[serde(skip_serializing_if = "Option::is_none")]
    api_error: Option<String>,
}

pub async fn run(ctx: &Context, args: StatusArgs) -> anyhow::Result<()> {
    let (cluster, connection) = cluster_status(ctx, &args.target.into()).await?;
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

/// The VMs' states and, when the API answers, the nodes and the connection
/// (for the stack's part). `target` chooses the cluster as kubectl would;
/// without one, the cluster's own kubeconfig.
async fn cluster_status(
    ctx: &Context,
    target: &Target,
) -> anyhow::Result<(ClusterStatus, Option<kubeapi::Connection>)> {
    let cluster = VmCluster::new(
        &ctx.config,
        &ctx.project_dir,
        &ctx.state,
        ctx.reporter.as_ref(),
    );
    let explicit = target.kubeconfig.is_some() || target.context.is_some();
    // Pointed at some cluster explicitly, status still shows it on a host without the VM tools.
    let (machines, machines_error) = match cluster.require_tools() {
        Ok(()) => (cluster.machines().await?, None),
        Err(missing) if explicit => (Vec::new(), Some(missing.to_string())),
        Err(missing) => return Err(missing.into()),
    };
    let master_running = machines.first().is_some_and(Machine::is_running);
    let target = match explicit {
        true => Ok(target.clone()),
        false if !ctx.state.kubeconfig().exists() => {
            Err("the cluster has no kubeconfig yet: run `orchestrator create`".to_string())
        }
        false if !master_running => Err("the master VM is not running".to_string()),
        false => Ok(Target {
            kubeconfig: Some(ctx.state.kubeconfig()),
            context: None,
        }),
    };
    let mut status = ClusterStatus {
        machines,
        machines_error,
        nodes: Vec::new(),
        api: None,
        api_error: None,
    };
    let mut answered = None;
    let listed = match target {
        Ok(target) => match kubeapi::connect(&target).await {
            Ok(connection) => {
                status.api = Some(connection.description.clone());
                let nodes = nodes::list(connection.client.clone()).await;
                answered = Some(connection);
                nodes.map_err(|err| format!("{err:#}"))
            }
            Err(err) => Err(format!("{err:#}")),
        },
        Err(why) => Err(why),
    };
    match listed {
        Ok(nodes) => status.nodes = nodes,
        Err(why) => status.api_error = Some(why),
    }
    Ok((status, answered))
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
