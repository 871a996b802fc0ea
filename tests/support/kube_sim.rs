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

/// A namespace name of a test's own; the namespace is deleted (without
/// waiting) when this is dropped, also when the test fails.
pub struct TestNamespace {
    pub name: String,
    kubeconfig: String,
}

impl TestNamespace {
    pub fn new(prefix: &str, kubeconfig: &str) -> Self {
        TestNamespace {
            name: format!("{prefix}-{}", orchestrator::state::random_hex(4)),
            kubeconfig: kubeconfig.into(),
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kubectl")
            .args([
                "--kubeconfig",
                &self.kubeconfig,
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
            ])
            .output();
    }
}
