//! Stopping and restarting billing-app, the seam of the API checks: on a
//! cluster it is the StatefulSet's `scale` subresource and a watch on its
//! pods; a test stops and starts a local process instead.

use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};

/// How long scaling may take until the pods are gone or Ready.
const SCALE_TIMEOUT: Duration = Duration::from_secs(180);

pub trait BillingControl: Send + Sync {
    /// The replica count billing-app runs with now.
    fn replicas(&self) -> BoxFuture<'_, anyhow::Result<i32>>;
    /// Sets the replica count and returns once that many replicas serve
    /// (none left for 0).
    fn scale(&self, replicas: i32) -> BoxFuture<'_, anyhow::Result<()>>;
}

/// billing-app's StatefulSet on the cluster.
pub struct KubeBilling {
    pub client: kube::Client,
    pub namespace: String,
}

const NAME: &str = "billing-app";

impl KubeBilling {
    fn stateful_sets(&self) -> Api<StatefulSet> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Watches billing-app's pods until `replicas` of them are Ready (none
    /// exist for 0).
    async fn wait_for_pods(&self, replicas: i32) -> anyhow::Result<()> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let config = watcher::Config::default().labels(&format!(
            "{}={NAME}",
            crate::deploy::manifest::COMPONENT_LABEL
        ));
        let (store, writer) = reflector::store();
        let events = reflector(writer, watcher(pods, config)).default_backoff();
        let mut events = std::pin::pin!(events);
        let settled = async {
            while let Some(event) = events.next().await {
                if matches!(event?, watcher::Event::Init | watcher::Event::InitApply(_)) {
                    continue;
                }
                let pods = store.state();
                let ready = pods.iter().filter(|p| is_ready(p)).count();
                let done = match replicas {
                    0 => pods.is_empty(),
                    n => ready >= usize::try_from(n).unwrap_or(0),
                };
                if done {
                    return Ok(());
                }
            }
            anyhow::bail!("the watch on billing-app's pods ended")
        };
        tokio::time::timeout(SCALE_TIMEOUT, settled).await.map_err(|_| {
            anyhow::anyhow!(
                "billing-app did not reach {replicas} ready replica(s) within {}s (`kubectl -n {} get pods`)",
                SCALE_TIMEOUT.as_secs(),
                self.namespace
            )
        })?
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

impl BillingControl for KubeBilling {
    fn replicas(&self) -> BoxFuture<'_, anyhow::Result<i32>> {
        Box::pin(async move {
            let scale = self.stateful_sets().get_scale(NAME).await?;
            Ok(scale.spec.and_then(|s| s.replicas).unwrap_or(0))
        })
    }

    fn scale(&self, replicas: i32) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let patch = serde_json::json!({"spec": {"replicas": replicas}});
            self.stateful_sets()
                .patch_scale(NAME, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            self.wait_for_pods(replicas).await
        })
    }
}
