use super::Context;

pub async fn run(_ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("`create` is being written")
}
