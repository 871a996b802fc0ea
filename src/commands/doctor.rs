use orchestrator::preflight::{self, HostFiles, Scope};

use super::Context;
use crate::cli::DoctorArgs;

pub async fn run(ctx: &Context, args: DoctorArgs) -> anyhow::Result<()> {
    let report = preflight::check(&ctx.config, Scope::Doctor, &HostFiles::from_env()).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for finding in &report.findings {
            println!("{}", finding.render());
        }
        let summary = report.summary;
        println!(
            "{} ok, {} warning(s), {} failure(s)",
            summary.ok, summary.warn, summary.fail
        );
    }
    match report.failure(|fails| {
        let names: Vec<&str> = fails.iter().map(|f| f.check.name()).collect();
        format!(
            "{} check(s) failed: {}; each says what to do",
            fails.len(),
            names.join(", ")
        )
    }) {
        Some(failure) => Err(failure.into()),
        None => Ok(()),
    }
}
