use orchestrator::kubeapi;
use orchestrator::reporter::{Reporter, Silent};
use orchestrator::verify::{self, Status, billing::KubeBilling, report};

use super::Context;
use crate::cli::VerifyArgs;
use crate::ui::paint;

pub async fn run(ctx: &Context, args: VerifyArgs) -> anyhow::Result<()> {
    let connection = kubeapi::connect(&args.target.into()).await?;
    let namespace = &ctx.config.deploy.namespace;
    let manifests_dir = ctx.project_dir.join(&ctx.config.deploy.manifests);
    let target = verify::Target {
        config: &ctx.config,
        manifests_dir: &manifests_dir,
        client: &connection.client,
        cluster: &connection.description,
        gateway: args.gateway_url,
    };
    let billing = KubeBilling {
        client: connection.client.clone(),
        namespace: namespace.clone(),
    };
    // Progress lines would break the JSON on stdout.
    let reporter: &dyn Reporter = if args.json {
        &Silent
    } else {
        ctx.reporter.as_ref()
    };
    reporter.note(&format!(
        "verifying namespace {namespace} on {}",
        connection.description
    ));
    let audit = verify::run(&target, &billing, reporter).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&audit)?);
    } else {
        print!("{}", report::checklist(&audit, &mark));
    }
    if let Some(file) = &args.report {
        std::fs::write(file, report::markdown(&audit))
            .map_err(|err| anyhow::anyhow!("cannot write the report {}: {err}", file.display()))?;
        reporter.note(&format!("evidence report written to {}", file.display()));
    }
    if audit.passed() {
        return Ok(());
    }
    anyhow::bail!(
        "verify: {} check(s) failed, {} could not run (skipped)",
        audit.count(Status::Failed),
        audit.count(Status::Skipped)
    )
}

fn mark(status: Status) -> String {
    let code = match status {
        Status::Passed => 32,
        Status::Failed => 31,
        Status::Skipped => 33,
    };
    paint(code, report::mark(status))
}
