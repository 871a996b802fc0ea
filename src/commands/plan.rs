use super::Context;
use crate::cli::PlanArgs;

pub async fn run(_ctx: &Context, _args: PlanArgs) -> anyhow::Result<()> {
    anyhow::bail!("`plan` is being written")
}
