use futures::StreamExt;
use orchestrator::kubeapi;
use orchestrator::logs::{self, Options};
use orchestrator::stack;

use super::Context;
use crate::cli::LogsArgs;

pub async fn run(ctx: &Context, args: LogsArgs) -> anyhow::Result<()> {
    let component = stack::component(&args.app)?;
    let options = Options {
        follow: args.follow,
        since_seconds: args.since.as_deref().map(logs::parse_since).transpose()?,
    };
    let connection = kubeapi::connect(&args.target.into()).await?;
    let mut lines = logs::lines(
        &connection.client,
        &ctx.config.deploy.namespace,
        component,
        &options,
    )
    .await?;
    while let Some(line) = lines.next().await {
        println!("{}", line?);
    }
    Ok(())
}
