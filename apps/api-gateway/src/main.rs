#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_common::main_with(api_gateway::run).await
}
