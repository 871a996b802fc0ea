// One thread: the service scales out by replicas, and a single thread keeps
// its memory and its cross-thread wake-ups down.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    service_common::main_with(billing_app::run).await
}
