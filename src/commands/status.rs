use super::Context;
use crate::cli::StatusArgs;

pub async fn run(_ctx: &Context, _args: StatusArgs) -> anyhow::Result<()> {
    anyhow::bail!("`status` is being written")
}
