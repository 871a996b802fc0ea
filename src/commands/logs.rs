use super::Context;
use crate::cli::LogsArgs;

pub async fn run(_ctx: &Context, _args: LogsArgs) -> anyhow::Result<()> {
    anyhow::bail!("`logs` is being written")
}
