//! The dashboard's HTTP side: the page and its assets (embedded in the
//! binary), the snapshot as JSON, and the changes as server-sent events. Every
//! route is a GET, and all but the static assets need the random token the
//! URL carries, so another local user or a web page in the browser cannot
//! read the cluster through it.

use std::convert::Infallible;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use futures::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::{LogEvent, Monitor, Snapshot};

const PAGE: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// What the routes share.
#[derive(Clone)]
pub struct Dashboard {
    pub token: String,
    pub monitor: Monitor,
}

pub fn router(dashboard: Dashboard) -> Router {
    Router::new()
        .route("/", get(page))
        .route(
            "/app.js",
            get(|| asset("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route(
            "/style.css",
            get(|| asset("text/css; charset=utf-8", STYLE)),
        )
        .route("/api/snapshot", get(snapshot))
        .route("/events", get(events))
        .with_state(dashboard)
}

#[derive(Deserialize)]
struct Access {
    token: Option<String>,
}

/// A request without the dashboard's token.
struct Denied;

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        (
            StatusCode::FORBIDDEN,
            "this dashboard needs its token: open the URL `orchestrator dashboard` printed\n",
        )
            .into_response()
    }
}

fn check(dashboard: &Dashboard, access: &Access) -> Result<(), Denied> {
    match &access.token {
        Some(token) if constant_time_eq(token.as_bytes(), dashboard.token.as_bytes()) => Ok(()),
        _ => Err(Denied),
    }
}

/// Compares without stopping at the first difference, so timing tells nothing about the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn page(
    State(dashboard): State<Dashboard>,
    Query(access): Query<Access>,
) -> Result<Response, Denied> {
    check(&dashboard, &access)?;
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response();
    let headers = response.headers_mut();
    // Everything comes from this server; the token in the URL goes nowhere else.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn snapshot(
    State(dashboard): State<Dashboard>,
    Query(access): Query<Access>,
) -> Result<Response, Denied> {
    check(&dashboard, &access)?;
    let snapshot = dashboard.monitor.snapshot.borrow().clone();
    Ok(axum::Json(snapshot).into_response())
}

/// `snapshot` (the whole page's data) now and on every change, `logs` (every
/// tail) once, then `log` for each new line or restarted tail.
async fn events(
    State(dashboard): State<Dashboard>,
    Query(access): Query<Access>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Denied> {
    check(&dashboard, &access)?;
    let mut snapshots = dashboard.monitor.snapshot.clone();
    let first = snapshot_event(&snapshots.borrow_and_update());
    let (tails, log_events) = dashboard.monitor.logs.subscribe();
    let tails = json_event("logs", &tails);
    let snapshot_changes = stream::unfold(snapshots, |mut snapshots| async move {
        snapshots.changed().await.ok()?;
        let event = snapshot_event(&snapshots.borrow_and_update());
        Some((event, snapshots))
    });
    let log_changes = stream::unfold(log_events, |mut events| async move {
        loop {
            match events.recv().await {
                Ok(event) => return Some((json_event::<LogEvent>("log", &event), events)),
                // A slow page misses lines rather than holding the others up.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let stream = stream::iter([first, tails])
        .chain(stream::select(snapshot_changes, log_changes))
        .map(Ok);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn snapshot_event(snapshot: &Snapshot) -> Event {
    json_event("snapshot", snapshot)
}

fn json_event<T: serde::Serialize>(name: &str, data: &T) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(data).expect("the dashboard's data serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::{LogBook, Snapshot};
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn dashboard() -> (Dashboard, tokio::sync::watch::Sender<Snapshot>, LogBook) {
        let snapshot = Snapshot {
            connected: true,
            namespace: "stack".into(),
            secrets: vec!["inventory-db-credentials".into()],
            ..Snapshot::default()
        };
        let (sender, monitor, logs) = Monitor::fixed(snapshot);
        let dashboard = Dashboard {
            token: "s3cret".into(),
            monitor,
        };
        (dashboard, sender, logs)
    }

    async fn get(dashboard: &Dashboard, uri: &str) -> Response {
        router(dashboard.clone())
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn data_needs_the_token_and_assets_do_not() {
        let (dashboard, _sender, _logs) = dashboard();
        for uri in ["/", "/?token=wrong", "/api/snapshot", "/events?token=s3cre"] {
            assert_eq!(
                get(&dashboard, uri).await.status(),
                StatusCode::FORBIDDEN,
                "{uri}"
            );
        }
        let page = get(&dashboard, "/?token=s3cret").await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[header::REFERRER_POLICY], "no-referrer");
        assert!(text(page).await.contains("<script src=\"app.js\""));
        assert_eq!(get(&dashboard, "/app.js").await.status(), StatusCode::OK);
        let json = text(get(&dashboard, "/api/snapshot?token=s3cret").await).await;
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(json["secrets"][0], "inventory-db-credentials");
    }

    #[tokio::test]
    async fn nothing_changes_through_it() {
        let (dashboard, _sender, _logs) = dashboard();
        let response = router(dashboard)
            .oneshot(
                Request::post("/api/snapshot?token=s3cret")
                    .body(Body::from("{}"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn events_push_the_snapshot_the_tails_and_then_each_change() {
        let (dashboard, sender, logs) = dashboard();
        logs.push("api-gateway", "listening on :3000".into());
        let response = get(&dashboard, "/events?token=s3cret").await;
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        let mut body = response.into_body().into_data_stream();
        let mut received = String::new();
        let mut next = async || {
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(2), body.next())
                .await
                .expect("an event within 2s")
                .unwrap()
                .unwrap();
            String::from_utf8(chunk.to_vec()).unwrap()
        };
        received.push_str(&next().await);
        received.push_str(&next().await);
        assert!(received.contains("event: snapshot\ndata: {"), "{received}");
        assert!(
            received.contains(
                r#"event: logs
data: {"api-gateway":["listening on :3000"]}"#
            ),
            "{received}"
        );

        sender.send_modify(|s| s.connected = false);
        let change = next().await;
        assert!(change.contains(r#""connected":false"#), "{change}");
        logs.push("billing-app", "order 7 saved".into());
        let line = next().await;
        assert!(
            line.contains(
                r#"event: log
data: {"app":"billing-app","line":"order 7 saved"}"#
            ),
            "{line}"
        );
    }
}
