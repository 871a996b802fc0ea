//! kube-sim, the real API server the cluster tests run against; its
//! kubeconfig's path comes from `KUBE_SIM_KUBECONFIG` (`../shared/kube-sim/up.sh`
//! prints it).

/// The kubeconfig's path; a cluster test cannot run without it.
pub fn kubeconfig() -> String {
    std::env::var("KUBE_SIM_KUBECONFIG")
        .expect("set KUBE_SIM_KUBECONFIG to kube-sim's kubeconfig to run this test")
}

/// A client of kube-sim, connected the way the binary connects.
pub async fn client(kubeconfig: &str) -> kube::Client {
    let target = orchestrator::kubeapi::Target {
        kubeconfig: Some(kubeconfig.into()),
        context: None,
    };
    orchestrator::kubeapi::connect(&target)
        .await
        .unwrap()
        .client
}
