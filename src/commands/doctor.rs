use orchestrator::prereq;

use super::Context;

pub async fn run(ctx: &Context) -> anyhow::Result<()> {
    let checks = prereq::check(&prereq::all_tools(ctx.config.cluster.provider));
    for check in &checks {
        match &check.path {
            Some(path) => println!("ok       {:<10} {}", check.tool.name(), path.display()),
            None => println!(
                "missing  {:<10} `{}` not found on PATH",
                check.tool.name(),
                check.tool.program()
            ),
        }
    }
    match prereq::missing(&checks) {
        Some(failure) => Err(failure.into()),
        None => {
            println!("all prerequisites found");
            Ok(())
        }
    }
}
