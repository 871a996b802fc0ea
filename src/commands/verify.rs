use orchestrator::error::Failure;
use orchestrator::verify::{self, Status, billing::KubeBilling, report};
use orchestrator::{dashboard, kubeapi};

use super::Context;
use crate::cli::VerifyArgs;
use crate::ui::{self, styled};

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
    // Progress goes to stderr: it never mixes with the JSON on stdout.
    let reporter = ctx.reporter.as_ref();
    reporter.note(&format!(
        "verifying namespace {namespace} on {}",
        connection.description
    ));
    let audit = verify::run(&target, &billing, reporter).await;
    if let Err(err) = dashboard::record_verify(&ctx.state, &audit) {
        reporter.warning(&format!("cannot keep this run for the dashboard: {err:#}"));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&audit)?);
    } else {
        anstream::print!("{}", report::checklist(&audit, &mark));
    }
    if let Some(file) = &args.report {
        std::fs::write(file, report::markdown(&audit))
            .map_err(|err| anyhow::anyhow!("cannot write the report {}: {err}", file.display()))?;
        reporter.note(&format!("evidence report written to {}", file.display()));
    }
    if audit.passed() {
        return Ok(());
    }
    Err(Failure::AuditFailed(format!(
        "verify: {} check(s) failed, {} could not run (skipped)",
        audit.count(Status::Failed),
        audit.count(Status::Skipped)
    ))
    .into())
}

fn mark(status: Status) -> String {
    let style = match status {
        Status::Passed => ui::SUCCESS,
        Status::Failed => ui::FAILURE,
        Status::Skipped => ui::WARNING,
    };
    styled(style, report::mark(status))
}
