use super::Context;

pub async fn run(_ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("`stop` is being written")
}
