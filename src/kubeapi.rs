//! Reaching a Kubernetes API server the way kubectl would: `--kubeconfig`, else
//! `$KUBECONFIG`, else `~/.kube/config`; `--context`, else `orchestrator` when
//! that context exists, else the current one. An unreachable server is found
//! out up front, before anything changes, and named in the error.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// A client that has answered once, and where it points.
#[derive(Clone)]
pub struct Connection {
    pub client: kube::Client,
    /// "context NAME in FILE (SERVER)", for messages.
    pub description: String,
    /// The namespace the context selects, if any.
    pub default_namespace: String,
}

pub async fn connect(target: &Target) -> anyhow::Result<Connection> {
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
    match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(Connection {
            client,
            description,
            default_namespace,
        }),
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

/// Runs an idempotent request again while the API server is briefly away
/// (restarting, overloaded), with a growing pause, until `deadline`. Any other
/// failure, or one at the deadline, is returned as it is.
pub async fn retrying<T, F, Fut>(deadline: Instant, mut request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut pause = Duration::from_millis(200);
    loop {
        match request().await {
            Err(err) if is_transient(&err) && Instant::now() + pause < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            result => return result,
        }
    }
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
