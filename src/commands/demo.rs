use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestrator::demo::{self, Load, Tally};
use orchestrator::kubeapi;
use orchestrator::stack;

use super::Context;
use crate::cli::{Demo, DemoArgs, HpaDemoArgs};

/// How often the autoscalers are shown while the load runs.
const SHOW_EVERY: Duration = Duration::from_secs(5);

pub async fn run(ctx: &Context, args: DemoArgs) -> anyhow::Result<()> {
    match args.demo {
        Demo::Hpa(args) => hpa(ctx, args).await,
    }
}

async fn hpa(ctx: &Context, args: HpaDemoArgs) -> anyhow::Result<()> {
    let duration = demo::parse_duration("--duration", &args.duration)?;
    let connection = kubeapi::connect(&args.target.into()).await?;
    let client = &connection.client;
    let namespace = &ctx.config.deploy.namespace;
    let gateway = match args.gateway_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => stack::gateway_url(client, namespace).await?.ok_or_else(|| {
            anyhow::anyhow!(
                "no LoadBalancer Service in namespace {namespace} has an address (is the stack deployed? \
                 `orchestrator status`); or pass --gateway-url"
            )
        })?,
    };
    let load = Load {
        url: format!("{gateway}/api/movies"),
        rate: args.rate,
        duration,
        request_timeout: Duration::from_secs(5),
    };
    println!(
        "{} requests/s to {} for {}s (Ctrl-C stops it); the autoscalers every {}s:",
        load.rate,
        load.url,
        duration.as_secs(),
        SHOW_EVERY.as_secs()
    );
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let driving = demo::drive(&load, tally.clone());
    let mut driving = std::pin::pin!(driving);
    let mut ticks = tokio::time::interval(SHOW_EVERY);
    loop {
        tokio::select! {
            result = &mut driving => {
                result?;
                break;
            }
            _ = ticks.tick() => show(client, namespace, started, &tally).await,
        }
    }
    show(client, namespace, started, &tally).await;
    println!(
        "load stopped: {}. The autoscalers scale back in after about 5 minutes without load \
         (follow it with `orchestrator dashboard`).",
        tally.summary()
    );
    Ok(())
}

/// One line: the time, each autoscaler's CPU and replicas, the load so far.
async fn show(client: &kube::Client, namespace: &str, started: Instant, tally: &Tally) {
    let autoscalers = match stack::status(client, namespace).await {
        Ok(stack) if stack.autoscalers.is_empty() => "no autoscaler in the namespace".to_string(),
        Ok(stack) => stack
            .autoscalers
            .iter()
            .map(|a| {
                let cpu = a.cpu_now.map_or("?".to_string(), |c| format!("{c}%"));
                let target = a.cpu_target.map_or("-".to_string(), |c| format!("{c}%"));
                format!(
                    "{} cpu {cpu}/{target} ×{} ({}..{})",
                    a.name, a.replicas, a.min, a.max
                )
            })
            .collect::<Vec<_>>()
            .join("  "),
        Err(err) => format!("cannot read the autoscalers: {err:#}"),
    };
    println!(
        "{:>4}s  {autoscalers}  | {}",
        started.elapsed().as_secs(),
        tally.summary()
    );
}
