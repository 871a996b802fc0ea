#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_common::main_with(billing_app::run).await
}
