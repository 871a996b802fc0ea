use super::Context;
use crate::cli::DestroyArgs;

pub async fn run(_ctx: &Context, _args: DestroyArgs) -> anyhow::Result<()> {
    anyhow::bail!("`destroy` is being written")
}
