//! Reaching a Kubernetes API server the way kubectl would: `--kubeconfig`, else
//! `$KUBECONFIG`, else `~/.kube/config`; `--context`, else `orchestrator` when
//! that context exists, else the current one. An unreachable server is found
//! out up front, before anything changes, and named in the error.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use backon::Retryable;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::time::Instant;

use crate::error::Failure;

/// The context `create` merges into the user's kubeconfig.
pub const CONTEXT: &str = "orchestrator";

/// Which cluster to talk to.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// A client, and where it points.
#[derive(Clone)]
pub struct Connection {
    pub client: kube::Client,
    /// "context NAME in FILE (SERVER)", for messages.
    pub description: String,
    /// The namespace the context selects, if any.
    pub default_namespace: String,
}

/// A client for `target` that has answered once: an unreachable server is
/// an error naming it.
pub async fn connect(target: &Target) -> anyhow::Result<Connection> {
    let connection = client(target).await?;
    let Connection {
        client,
        description,
        ..
    } = &connection;
    match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(connection),
        Ok(Err(err)) => Err(Failure::Unreachable(format!(
            "the Kubernetes API did not answer: {description}: {err}"
        ))
        .into()),
        Err(_) => Err(Failure::Unreachable(format!(
            "the Kubernetes API did not answer within 10s: {description}"
        ))
        .into()),
    }
}

/// A client for `target` that has not been tried yet (a watch's own retries
/// ride out a server that is still coming up). Every client of the tool is
/// built here: a 5 s connect timeout, the context chosen as kubectl would.
pub async fn client(target: &Target) -> Result<Connection, Failure> {
    let (kubeconfig, source) = read_kubeconfig(target.kubeconfig.as_deref())?;
    let context = target.context.clone().or_else(|| {
        kubeconfig
            .contexts
            .iter()
            .any(|c| c.name == CONTEXT)
            .then(|| CONTEXT.to_string())
    });
    let shown_context = context
        .clone()
        .or_else(|| kubeconfig.current_context.clone())
        .unwrap_or_else(|| "(none)".into());
    let options = KubeConfigOptions {
        context,
        ..KubeConfigOptions::default()
    };
    // Whatever fails here is in the kubeconfig's contents (a context or user that
    // does not exist, unreadable certificates): the user fixes the file or the flags.
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|err| {
            Failure::Usage(format!(
                "the kubeconfig {source}, context {shown_context}, cannot be used: {err}"
            ))
        })?;
    config.connect_timeout = Some(Duration::from_secs(5));
    let description = format!(
        "context {shown_context} in {source} ({})",
        config.cluster_url
    );
    let default_namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config)
        .map_err(|err| Failure::Usage(format!("{description} cannot be used: {err}")))?;
    Ok(Connection {
        client,
        description,
        default_namespace,
    })
}

/// The kubeconfig kubectl would read, and where it came from. None at all, or
/// one that cannot be parsed, is a usage error naming the file.
fn read_kubeconfig(explicit: Option<&Path>) -> Result<(Kubeconfig, String), Failure> {
    const HINT: &str = "run `orchestrator create` first, or pass --kubeconfig";
    let from_env = std::env::var_os("KUBECONFIG").filter(|value| !value.is_empty());
    let (read, source) = match (explicit, from_env) {
        (Some(path), _) => {
            if !path.exists() {
                return Err(Failure::Usage(format!(
                    "--kubeconfig {}: no such file",
                    path.display()
                )));
            }
            (Kubeconfig::read_from(path), path.display().to_string())
        }
        (None, Some(value)) => (
            Kubeconfig::from_env().map(Option::unwrap_or_default),
            format!("$KUBECONFIG ({})", value.to_string_lossy()),
        ),
        (None, None) => {
            let home = std::env::home_dir().map(|home| home.join(".kube").join("config"));
            let Some(path) = home.filter(|path| path.exists()) else {
                return Err(Failure::Usage(format!(
                    "no kubeconfig: KUBECONFIG is not set and ~/.kube/config does not exist; {HINT}"
                )));
            };
            (Kubeconfig::read_from(&path), path.display().to_string())
        }
    };
    let kubeconfig = read
        .map_err(|err| Failure::Usage(format!("the kubeconfig {source} cannot be read: {err}")))?;
    Ok((kubeconfig, source))
}

/// The pauses of every retry and every resumed watch: 200 ms doubling to 2 s,
/// each with a random part of up to as much again, so that clients waiting
/// on one restarted API server do not all come back at once. (kube's default
/// for watches grows to 30 s: after an API server restart of a minute a wait
/// could stay blind until past its deadline.)
pub fn backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .without_max_times()
}

/// [`backoff`] for a watch (`WatchStreamExt::backoff`), reset by each event.
pub fn watch_backoff() -> kube::runtime::watcher::ExponentialBackoff {
    backoff().into()
}

/// Runs an idempotent request again while the API server is briefly away
/// (restarting, overloaded), pausing as [`backoff`] says, until `deadline`.
/// Any other failure, or one at the deadline, is returned as it is.
pub async fn retrying<T, F, Fut>(deadline: Instant, request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    request
        .retry(backoff())
        .sleep(tokio::time::sleep)
        .when(is_transient)
        .adjust(|_, pause| pause.filter(|pause| Instant::now() + *pause < deadline))
        .await
}

/// Whether a failure says the server is away for now rather than "no": the
/// connection failed, or it answered "too many requests" or "unavailable".
pub fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => matches!(status.code, 429 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// A request, to say what was refused when it fails.
pub struct Request<'a> {
    /// The verb as RBAC names it: get, list, watch, patch, delete.
    pub verb: &'a str,
    /// The resource as RBAC names it: "deployments.apps", "services".
    pub resource: String,
    /// Where: a namespace, or cluster-wide.
    pub namespace: Option<&'a str>,
    /// The object in words ("StatefulSet/inventory-db (inventory-db.yaml)"), or what was listed.
    pub object: String,
}

impl Request<'_> {
    /// The failure in words a user can act on: for 403 the missing right and
    /// how to check it, for 409/422 the API's own message per field.
    pub fn failed(&self, err: kube::Error) -> anyhow::Error {
        let Request {
            verb,
            resource,
            object,
            ..
        } = self;
        let place = match self.namespace {
            Some(namespace) => format!("in namespace {namespace}"),
            None => "cluster-wide".to_string(),
        };
        let status = match err {
            kube::Error::Api(status) => status,
            other => {
                return anyhow::anyhow!(
                    "cannot {verb} {object} {place}: the API server did not answer: {other}"
                );
            }
        };
        match status.code {
            403 => {
                let check = match self.namespace {
                    Some(namespace) => {
                        format!("kubectl auth can-i {verb} {resource} -n {namespace}")
                    }
                    None => format!("kubectl auth can-i {verb} {resource}"),
                };
                anyhow::anyhow!(
                    "cannot {verb} {object} {place}: forbidden: {}\n  \
                     The kubeconfig's user lacks the RBAC right to {verb} {resource} {place}: use the \
                     cluster admin's context, or have a Role (ClusterRole) granting it bound to that user. \
                     Check with `{check}`.",
                    status.message
                )
            }
            409 | 422 => {
                let causes: Vec<String> = status
                    .details
                    .iter()
                    .flat_map(|details| &details.causes)
                    .map(|cause| match cause.field.as_str() {
                        "" => format!("\n  - {}", cause.message),
                        field => format!("\n  - {field}: {}", cause.message),
                    })
                    .collect();
                let why = match causes.is_empty() {
                    true => format!(": {}", status.message),
                    false => causes.concat(),
                };
                anyhow::anyhow!(
                    "{object} was refused by the API server ({} {}){why}",
                    status.code,
                    status.reason
                )
            }
            code => anyhow::anyhow!(
                "cannot {verb} {object} {place}: {} ({code} {})",
                status.message,
                status.reason
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("", "").with_code(code),
        ))
    }

    #[test]
    fn pauses_grow_from_200_ms_to_2_s_with_a_random_part() {
        let pauses: Vec<Duration> = backon::BackoffBuilder::build(backoff()).take(8).collect();
        let floors = [200, 400, 800, 1600, 2000, 2000, 2000, 2000].map(Duration::from_millis);
        for (pause, floor) in pauses.iter().zip(floors) {
            assert!(*pause >= floor && *pause < floor * 2, "{pauses:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_failure_is_retried_until_the_deadline() {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(10);
        let result: Result<(), _> = retrying(deadline, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(api_error(503))
        })
        .await;
        assert!(matches!(result, Err(kube::Error::Api(ref s)) if s.code == 503));
        assert!(calls.load(Ordering::SeqCst) > 3, "{calls:?}");
        assert!(Instant::now() < deadline, "no pause runs past the deadline");
        assert!(
            Instant::now() + Duration::from_secs(4) >= deadline,
            "gave up early"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_returned_at_once_and_a_success_after_retries() {
        let calls = AtomicU32::new(0);
        let deadline = Instant::now() + Duration::from_secs(10);
        let refused: Result<(), _> = retrying(deadline, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(api_error(403))
        })
        .await;
        assert!(refused.is_err());
        assert_eq!(calls.swap(0, Ordering::SeqCst), 1);

        let answered = retrying(deadline, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(api_error(429)),
                _ => Ok("answer"),
            }
        })
        .await;
        assert_eq!(answered.unwrap(), "answer");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
