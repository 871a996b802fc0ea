//! The monitor against an API server of the test's own (and against none).

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Request, Response, StatusCode, header};
use futures::stream;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::{Monitor, Snapshot, Source, Timing, said_once};

fn source(client: kube::Client) -> Source {
    Source {
        client,
        cluster: "context test".into(),
        namespace: "stack".into(),
        verify_file: PathBuf::from("/nonexistent/last-verify.json"),
    }
}

/// An API server whose lists are empty and whose watches stream what the
/// test sends; it counts the lists it answers (not the probe's requests),
/// and can be down.
#[derive(Clone, Default)]
struct FakeApi {
    lists: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    /// The open watches by path; dropping the sender ends the watch.
    watches: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Bytes>>>>,
}

impl FakeApi {
    fn client(&self) -> kube::Client {
        let api = self.clone();
        let service = tower::service_fn(move |request: Request<kube::client::Body>| {
            let answer = api.answer(&request);
            async move { Ok::<_, Infallible>(answer) }
        });
        kube::Client::new(service, "stack")
    }

    fn answer(&self, request: &Request<kube::client::Body>) -> Response<Body> {
        if self.down.load(Ordering::SeqCst) {
            let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "the API server is down", "reason": "ServiceUnavailable", "code": 503});
            return json_response(StatusCode::SERVICE_UNAVAILABLE, status.to_string());
        }
        let path = request.uri().path().to_string();
        if path == "/version" {
            let info = json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0",
                "gitCommit": "", "gitTreeState": "", "buildDate": "", "goVersion": "",
                "compiler": "", "platform": ""});
            return json_response(StatusCode::OK, info.to_string());
        }
        if request
            .uri()
            .query()
            .is_some_and(|q| q.contains("watch=true"))
        {
            let (sender, receiver) = mpsc::unbounded_channel();
            self.watches.lock().unwrap().insert(path, sender);
            let events = stream::unfold(receiver, |mut receiver| async move {
                let event = receiver.recv().await?;
                Some((Ok::<_, Infallible>(event), receiver))
            });
            return Response::new(Body::from_stream(events));
        }
        self.lists.fetch_add(1, Ordering::SeqCst);
        let list = json!({"apiVersion": "v1", "kind": "List",
            "metadata": {"resourceVersion": "1"}, "items": []});
        json_response(StatusCode::OK, list.to_string())
    }

    fn lists(&self) -> usize {
        self.lists.load(Ordering::SeqCst)
    }

    /// Sends `event` on the watch of `path`, once it is open.
    async fn send(&self, path: &str, event: serde_json::Value) {
        for _ in 0..200 {
            if let Some(watch) = self.watches.lock().unwrap().get(path) {
                watch.send(format!("{event}\n").into()).unwrap();
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no watch of {path}");
    }

    /// Refuses every new request (503), or answers again.
    fn refuse(&self, refuse: bool) {
        self.down.store(refuse, Ordering::SeqCst);
    }

    fn end_watches(&self) {
        self.watches.lock().unwrap().clear();
    }
}

fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    response
}

const PODS: &str = "/api/v1/namespaces/stack/pods";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/stack/deployments";

fn pod_added(name: &str) -> serde_json::Value {
    json!({"type": "ADDED", "object": {"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "stack", "resourceVersion": "2"}}})
}

/// The monitor on `api`, refreshing every `refresh`, and its snapshots (the
/// monitor is returned to be kept: dropping it stops its tasks).
async fn monitor(api: &FakeApi, refresh: Duration) -> (Monitor, watch::Receiver<Snapshot>) {
    let timing = Timing {
        refresh,
        ..Timing::default()
    };
    let monitor = Monitor::start(source(api.client()), timing).await;
    let snapshots = monitor.snapshot.clone();
    (monitor, snapshots)
}

/// Waits until the snapshot satisfies `check`, or fails saying `what`.
async fn until(
    snapshots: &mut watch::Receiver<Snapshot>,
    what: &str,
    check: impl Fn(&Snapshot) -> bool,
) {
    while !check(&snapshots.borrow_and_update()) {
        let changed = tokio::time::timeout(Duration::from_secs(5), snapshots.changed()).await;
        assert!(changed.is_ok(), "{what}: {:?}", snapshots.borrow());
    }
}

fn pod_names(snapshot: &Snapshot) -> Vec<&str> {
    snapshot.pods.iter().map(|p| p.name.as_str()).collect()
}

#[tokio::test]
async fn a_change_is_read_from_its_store_and_lists_nothing() {
    let api = FakeApi::default();
    let (_monitor, mut snapshots) = monitor(&api, Duration::from_secs(60)).await;
    assert!(snapshots.borrow_and_update().connected);
    assert_eq!(api.lists(), 7, "each of the seven watches' first list");

    api.send(PODS, pod_added("stray-1")).await;
    until(&mut snapshots, "the pod shown", |s| {
        pod_names(s) == ["stray-1"]
    })
    .await;
    let added = json!({"type": "ADDED", "object": {"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api-gateway", "namespace": "stack", "resourceVersion": "3"},
        "spec": {"replicas": 2, "selector": {}, "template": {}}, "status": {"readyReplicas": 1}}});
    api.send(DEPLOYMENTS, added).await;
    until(&mut snapshots, "the workload shown", |s| {
        s.workloads
            .iter()
            .any(|w| w.name == "api-gateway" && (w.ready, w.desired) == (1, 2))
    })
    .await;
    assert_eq!(api.lists(), 7, "a change is read from its store");
}

#[tokio::test]
async fn a_lost_api_server_shows_with_the_last_data_and_then_live_again() {
    let api = FakeApi::default();
    let (_monitor, mut snapshots) = monitor(&api, Duration::from_millis(50)).await;
    api.send(PODS, pod_added("stray-1")).await;
    until(&mut snapshots, "live with the pod", |s| {
        s.connected && pod_names(s) == ["stray-1"]
    })
    .await;

    api.refuse(true);
    api.end_watches();
    until(&mut snapshots, "the loss shown", |s| !s.connected).await;
    let lost = snapshots.borrow().clone();
    let error = lost.error.as_deref().unwrap_or_default();
    assert!(error.contains("the API server is down"), "{error}");
    assert_eq!(pod_names(&lost), ["stray-1"], "the last data is kept");

    api.refuse(false);
    until(&mut snapshots, "live again", |s| {
        s.connected && s.error.is_none()
    })
    .await;
}

#[tokio::test]
async fn a_server_shutting_down_shows_as_lost_while_its_watches_are_still_open() {
    let api = FakeApi::default();
    let (_monitor, mut snapshots) = monitor(&api, Duration::from_millis(50)).await;
    until(&mut snapshots, "live", |s| s.connected).await;
    api.refuse(true);
    until(&mut snapshots, "the loss shown", |s| {
        s.error
            .as_deref()
            .is_some_and(|e| e.contains("the API server is down"))
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_cluster_starts_the_monitor_and_says_why() {
    // Nothing listens on port 1: the probe and every watch fail at once.
    let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let monitor = Monitor::start(source(client), Timing::default()).await;
    let snapshot = monitor.snapshot.borrow().clone();
    assert!(!snapshot.connected);
    let error = snapshot.error.unwrap();
    assert!(error.contains("Connection refused"), "{error}");
    assert_eq!(snapshot.updated_at, None);
    assert_eq!(snapshot.cluster, "context test");
}

#[test]
fn an_error_says_each_cause_once() {
    let err = anyhow::anyhow!("connection refused")
        .context("client error (Connect)")
        .context("failed to list: client error (Connect)");
    assert_eq!(
        said_once(err.as_ref()),
        "failed to list: client error (Connect): connection refused"
    );
}
