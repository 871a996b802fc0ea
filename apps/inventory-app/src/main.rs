#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_common::main_with(inventory_app::run).await
}
