use super::Context;
use crate::cli::DeployArgs;

pub async fn run(_ctx: &Context, _args: DeployArgs) -> anyhow::Result<()> {
    anyhow::bail!("`deploy` is being written")
}
