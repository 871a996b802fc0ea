//! `logs APP`: the log lines of every replica of a component, each prefixed
//! by its pod, read through the Kubernetes API (no kubectl needed). Without
//! `--follow` the pods come one after another; with it, the component's pods
//! are watched, so a replica that starts later (a scale-up, a rollout) joins,
//! and lines are interleaved as they arrive.

use std::collections::HashSet;

use anyhow::Context;
use futures::stream::{self, BoxStream};
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use kube::runtime::{WatchStreamExt, watcher};

use crate::deploy::labels::COMPONENT_LABEL;
use crate::error::Failure;
use crate::stack::Component;

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub follow: bool,
    /// Only lines newer than this many seconds.
    pub since_seconds: Option<i64>,
}

/// `30s`, `5m`, `2h`, `1h30m`, ... as seconds.
pub fn parse_since(text: &str) -> Result<i64, Failure> {
    let duration: k8s_openapi::jiff::SignedDuration = text.parse().map_err(|err| {
        Failure::Usage(format!(
            "--since {text}: not a duration like 30s, 5m or 2h ({err})"
        ))
    })?;
    match duration.as_secs() {
        secs if secs > 0 => Ok(secs),
        _ => Err(Failure::Usage(format!(
            "--since {text}: must be at least one second"
        ))),
    }
}

/// A log line as printed: `[pod] line`, or `[pod/container] line` for a pod
/// of several containers.
pub fn prefixed(source: &str, line: &str) -> String {
    format!("[{source}] {line}")
}

/// One container's log to read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    pod: String,
    container: String,
    /// What prefixes its lines.
    label: String,
}

/// The containers of a pod whose containers have started (a pending pod has
/// no log yet: the API answers 400).
fn sources(pod: &Pod) -> Vec<Source> {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if !matches!(phase, Some("Running" | "Succeeded" | "Failed")) {
        return Vec::new();
    }
    let name = pod.metadata.name.clone().unwrap_or_default();
    let containers: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|spec| spec.containers.iter().map(|c| c.name.as_str()))
        .collect();
    let several = containers.len() > 1;
    containers
        .into_iter()
        .map(|container| Source {
            label: if several {
                format!("{name}/{container}")
            } else {
                name.clone()
            },
            pod: name.clone(),
            container: container.to_string(),
        })
        .collect()
}

/// The lines of every replica of `component` in `namespace`, prefixed by pod.
pub async fn lines(
    client: &kube::Client,
    namespace: &str,
    component: &Component,
    options: &Options,
) -> anyhow::Result<BoxStream<'static, anyhow::Result<String>>> {
    let app = component.name;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{COMPONENT_LABEL}={app}");
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .with_context(|| format!("cannot list the pods of {app} in namespace {namespace}"))?;
    if list.items.is_empty() {
        anyhow::bail!(
            "{app} has no pods in namespace {namespace}: is the stack deployed (`orchestrator status`)?"
        );
    }
    let read = reader(pods.clone(), namespace, options);
    if options.follow {
        // Every pod seen started, once (by uid: a StatefulSet's replacement
        // pod keeps its name), from the watch's first listing on.
        let mut seen = HashSet::new();
        let started = watcher(pods, watcher::Config::default().labels(&selector))
            .backoff(crate::kubeapi::watch_backoff())
            .applied_objects()
            // A failed watch is retried with backoff; the open logs go on meanwhile.
            .filter_map(|pod| async move { pod.ok() })
            .flat_map(move |pod| {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let sources = sources(&pod);
                let new = !sources.is_empty() && seen.insert(uid);
                stream::iter(if new { sources } else { Vec::new() })
            });
        return Ok(started.map(read).flatten_unordered(None).boxed());
    }
    let mut sources: Vec<Source> = list.items.iter().flat_map(sources).collect();
    if sources.is_empty() {
        anyhow::bail!(
            "no pod of {app} in namespace {namespace} has started yet (`kubectl -n {namespace} get pods -l {selector}`)"
        );
    }
    sources.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(stream::iter(sources).map(read).flatten().boxed())
}

/// Opens a source's log when first polled and yields its prefixed lines.
fn reader(
    pods: Api<Pod>,
    namespace: &str,
    options: &Options,
) -> impl FnMut(Source) -> BoxStream<'static, anyhow::Result<String>> + use<> {
    let namespace = namespace.to_string();
    let options = options.clone();
    move |source| {
        let params = LogParams {
            container: Some(source.container.clone()),
            follow: options.follow,
            since_seconds: options.since_seconds,
            ..LogParams::default()
        };
        let (pods, namespace) = (pods.clone(), namespace.clone());
        let open = async move {
            let reader = pods.log_stream(&source.pod, &params).await.with_context(|| {
                format!(
                    "cannot read the log of pod {} (container {}): the API server could not get it from the kubelet \
                     of the pod's node; is the node Ready and the container started? (`kubectl -n {namespace} describe pod {}`)",
                    source.pod, source.container, source.pod
                )
            })?;
            let label = source.label;
            anyhow::Ok(
                reader
                    .lines()
                    .map_ok(move |line| prefixed(&label, &line))
                    .map_err(anyhow::Error::from),
            )
        };
        stream::once(open).try_flatten().boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn lines_are_prefixed_by_pod_or_pod_and_container() {
        let single = pod(
            "metadata: {name: web-b}\nspec: {containers: [{name: app}]}\nstatus: {phase: Running}",
        );
        let double = pod(
            "metadata: {name: web-a}\nspec: {containers: [{name: app}, {name: sidecar}]}\nstatus: {phase: Running}",
        );
        let labels: Vec<String> = [double, single]
            .iter()
            .flat_map(sources)
            .map(|s| s.label)
            .collect();
        assert_eq!(labels, ["web-a/app", "web-a/sidecar", "web-b"]);
        assert_eq!(
            prefixed("web-b", "listening on :8080"),
            "[web-b] listening on :8080"
        );
    }

    #[test]
    fn a_pending_pod_has_no_log_yet() {
        let pending = pod(
            "metadata: {name: web-c}\nspec: {containers: [{name: app}]}\nstatus: {phase: Pending}",
        );
        assert_eq!(sources(&pending), []);
    }

    #[test]
    fn since_takes_friendly_durations() {
        assert_eq!(parse_since("30s").unwrap(), 30);
        assert_eq!(parse_since("5m").unwrap(), 300);
        assert_eq!(parse_since("1h30m").unwrap(), 5400);
        assert!(matches!(parse_since("soon"), Err(Failure::Usage(_))));
        assert!(matches!(parse_since("0s"), Err(Failure::Usage(_))));
    }
}
