//! Reaching a Kubernetes API server the way kubectl would: `--kubeconfig`, else
//! `$KUBECONFIG`, else `~/.kube/config`; `--context`, else `orchestrator` when
//! that context exists, else the current one. An unreachable server is found
//! out up front, before anything changes, and named in the error.

use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

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
    let (kubeconfig, source) = match &target.kubeconfig {
        Some(path) => (Kubeconfig::read_from(path), path.display().to_string()),
        None => (
            Kubeconfig::read(),
            std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into()),
        ),
    };
    let kubeconfig = kubeconfig.map_err(|err| {
        Failure::Unreachable(format!("cannot read the kubeconfig {source}: {err}"))
    })?;
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
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|err| {
            Failure::Unreachable(format!(
                "kubeconfig {source}, context {shown_context}: {err}"
            ))
        })?;
    config.connect_timeout = Some(Duration::from_secs(5));
    let description = format!(
        "context {shown_context} in {source} ({})",
        config.cluster_url
    );
    let default_namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config)
        .map_err(|err| Failure::Unreachable(format!("{description}: {err}")))?;
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
