//! `logs APP`: the log lines of every replica of a component, each prefixed
//! by its pod, read through the Kubernetes API (no kubectl needed). Without
//! `--follow` the pods come one after another; with it, lines are
//! interleaved as they arrive.

use anyhow::Context;
use futures::stream::{self, BoxStream};
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};

use crate::deploy::manifest::COMPONENT_LABEL;
use crate::error::Failure;
use crate::verify::COMPONENTS;

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

/// The containers of the component's pods, sorted by pod.
fn sources(pods: &[Pod]) -> Vec<Source> {
    let mut sources: Vec<Source> = pods
        .iter()
        .flat_map(|pod| {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let containers: Vec<String> = pod
                .spec
                .iter()
                .flat_map(|spec| spec.containers.iter().map(|c| c.name.clone()))
                .collect();
            let several = containers.len() > 1;
            containers.into_iter().map(move |container| Source {
                label: if several {
                    format!("{name}/{container}")
                } else {
                    name.clone()
                },
                pod: name.clone(),
                container,
            })
        })
        .collect();
    sources.sort_by(|a, b| a.label.cmp(&b.label));
    sources
}

/// The lines of every replica of `app` in `namespace`, prefixed by pod.
pub async fn lines(
    client: &kube::Client,
    namespace: &str,
    app: &str,
    options: &Options,
) -> anyhow::Result<BoxStream<'static, anyhow::Result<String>>> {
    if !COMPONENTS.iter().any(|c| c.name == app) {
        let names: Vec<&str> = COMPONENTS.iter().map(|c| c.name).collect();
        return Err(
            Failure::Usage(format!("no app {app}: the apps are {}", names.join(", "))).into(),
        );
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("{COMPONENT_LABEL}={app}")))
        .await
        .with_context(|| format!("cannot list the pods of {app} in namespace {namespace}"))?;
    let sources = sources(&list.items);
    if sources.is_empty() {
        anyhow::bail!(
            "{app} has no pods in namespace {namespace}: is the stack deployed (`orchestrator status`)?"
        );
    }
    let mut streams = Vec::new();
    for source in sources {
        let params = LogParams {
            container: Some(source.container.clone()),
            follow: options.follow,
            since_seconds: options.since_seconds,
            ..LogParams::default()
        };
        let reader = pods.log_stream(&source.pod, &params).await.with_context(|| {
            format!(
                "cannot read the log of pod {} (container {}): the API server could not get it from the kubelet \
                 of the pod's node; is the node Ready and the container started? (`kubectl -n {namespace} describe pod {}`)",
                source.pod, source.container, source.pod
            )
        })?;
        let label = source.label;
        streams.push(
            reader
                .lines()
                .map_ok(move |line| prefixed(&label, &line))
                .map_err(anyhow::Error::from)
                .boxed(),
        );
    }
    Ok(if options.follow {
        stream::select_all(streams).boxed()
    } else {
        stream::iter(streams).flatten().boxed()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_prefixed_by_pod_or_pod_and_container() {
        let pods: Vec<Pod> = serde_yaml::from_str(
            "- metadata: {name: web-b}\n  spec: {containers: [{name: app}]}\n\
             - metadata: {name: web-a}\n  spec: {containers: [{name: app}, {name: sidecar}]}\n",
        )
        .unwrap();
        let labels: Vec<String> = sources(&pods).into_iter().map(|s| s.label).collect();
        assert_eq!(labels, ["web-a/app", "web-a/sidecar", "web-b"]);
        assert_eq!(
            prefixed("web-b", "listening on :8080"),
            "[web-b] listening on :8080"
        );
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
