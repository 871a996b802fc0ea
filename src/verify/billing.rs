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

use crate::deploy::readiness;
use crate::kubeapi::watch_backoff;

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

const NAME: &str = crate::stack::BILLING;

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
            crate::deploy::labels::COMPONENT_LABEL
        ));
        let (store, writer) = reflector::store();
        let events = reflector(writer, watcher(pods, config).backoff(watch_backoff()));
        let settled = settled(events, &store, replicas);
        tokio::time::timeout(SCALE_TIMEOUT, settled).await.map_err(|_| {
            anyhow::anyhow!(
                "billing-app did not reach {replicas} ready replica(s) within {}s (`kubectl -n {} get pods`)",
                SCALE_TIMEOUT.as_secs(),
                self.namespace
            )
        })?
    }
}

/// Follows the pod events until `replicas` pods in `store` are Ready (none
/// exist for 0). A broken watch (an API server restart, a compacted
/// resourceVersion) is not the end: the watcher resumes by itself after its
/// back-off, as the deploy's waits do, until the caller's deadline.
async fn settled(
    events: impl futures::Stream<Item = watcher::Result<watcher::Event<Pod>>>,
    store: &reflector::Store<Pod>,
    replicas: i32,
) -> anyhow::Result<()> {
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match event {
            // Resumed by the watcher itself, relisting if needed.
            Err(_) | Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
            Ok(_) => {}
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
}

/// A pod that serves: Ready, and not on its way out.
fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && readiness::pod_is_ready(pod)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ready: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "billing-app-0", "namespace": "stack", "uid": "u1"},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn the_wait_resumes_after_a_watch_error() {
        let (store, writer) = reflector::store();
        let events = futures::stream::iter([
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(pod("False"))),
            Ok(watcher::Event::InitDone),
            // The watch broke (as on an API server restart): the watcher reports it, then resumes.
            Err(watcher::Error::NoResourceVersion),
            Ok(watcher::Event::Apply(pod("True"))),
        ]);
        let events = reflector(writer, events);
        settled(events, &store, 1)
            .await
            .expect("a broken watch is resumed, not the end of the wait");
    }
}
