use super::Context;
use crate::cli::VerifyArgs;

pub async fn run(_ctx: &Context, _args: VerifyArgs) -> anyhow::Result<()> {
    anyhow::bail!("`verify` is being written")
}
