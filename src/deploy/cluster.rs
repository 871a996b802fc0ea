//! The stack's objects on the API server: which kinds it serves (discovery,
//! once per kind), server-side apply with one field manager, and what an
//! apply would change. The record of what was applied, which prune follows,
//! is in [`super::applyset`]; the wait for a workload in [`super::rollout`].
//!
//! Every request is retried while the API server is briefly away (a restart,
//! a compacted watch), so a deploy outlives what a real control plane does.

use std::collections::HashMap;
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::Scope;
use kube::error::DiscoveryError;
use serde_json::Value;
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;

use super::applyset;
use super::labels::{APPLYSET_PART_OF, MANAGED_BY, MANAGER};
use super::manifest::Manifest;
use crate::kubeapi::{Request, retrying};

/// How long a request outside a wave (plan, prune) keeps retrying while the
/// API server is away: an API server restarts in seconds; longer is an outage
/// worth reporting. A wave's requests share the wave's deadline instead: an
/// outage that the wave's timeout allows for is waited out.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Create,
    Update,
    Unchanged,
    Prune,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Create => "create",
            Change::Update => "update",
            Change::Unchanged => "unchanged",
            Change::Prune => "prune",
        }
    }

    /// As a report of what was done.
    pub fn done(self) -> &'static str {
        match self {
            Change::Create => "created",
            Change::Update => "updated",
            Change::Unchanged => "unchanged",
            Change::Prune => "pruned",
        }
    }
}

/// A kind the API server serves: its resource, and whether it is namespaced.
#[derive(Debug, Clone)]
pub(super) struct Served {
    pub(super) resource: ApiResource,
    pub(super) namespaced: bool,
}

impl Served {
    /// The resource as RBAC names it: "deployments.apps", "services".
    pub(super) fn rbac_name(&self) -> String {
        match self.resource.group.as_str() {
            "" => self.resource.plural.clone(),
            group => format!("{}.{group}", self.resource.plural),
        }
    }
}

/// Whether a discovery failure means the API server does not serve the kind:
/// a 404, or an answer without it. Any other failure (forbidden, unavailable)
/// says nothing about it.
fn is_not_served(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => status.code == 404,
        kube::Error::Discovery(
            DiscoveryError::MissingApiGroup(_)
            | DiscoveryError::MissingKind(_)
            | DiscoveryError::MissingResource(_),
        ) => true,
        _ => false,
    }
}

/// The stack's side of the API server: discovery and apply here, the
/// ApplySet in [`super::applyset`], the waits in [`super::rollout`].
pub struct Applier {
    pub(super) client: kube::Client,
    pub(super) namespace: String,
    pub(super) applyset: String,
    kinds: Mutex<HashMap<String, Served>>,
    namespace_exists: OnceCell<bool>,
}

impl Applier {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Applier {
            client,
            namespace: namespace.to_string(),
            applyset: applyset::applyset_id(namespace),
            kinds: Mutex::default(),
            namespace_exists: OnceCell::new(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The deadline of a request outside a wave.
    pub(super) fn patience() -> Instant {
        Instant::now() + PATIENCE
    }

    pub(super) fn request(
        &self,
        verb: &'static str,
        served: &Served,
        object: String,
    ) -> Request<'_> {
        Request {
            verb,
            resource: served.rbac_name(),
            namespace: served.namespaced.then_some(self.namespace.as_str()),
            object,
        }
    }

    /// The kind of a manifest as the server serves it (discovered once).
    async fn served(
        &self,
        api_version: &str,
        kind: &str,
        deadline: Instant,
    ) -> anyhow::Result<Served> {
        let key = format!("{api_version}/{kind}");
        if let Some(served) = self.kinds.lock().await.get(&key) {
            return Ok(served.clone());
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let found = retrying(deadline, || {
            kube::discovery::pinned_kind(&self.client, &gvk)
        })
        .await;
        let (resource, capabilities) = match found {
            Ok(found) => found,
            Err(err) if is_not_served(&err) => {
                anyhow::bail!("the API server does not serve {kind} in {api_version}")
            }
            Err(err) => {
                return Err(discovery_failed(
                    err,
                    &format!("/{}", discovery_path(api_version)),
                ));
            }
        };
        let served = Served {
            resource,
            namespaced: capabilities.scope == Scope::Namespaced,
        };
        self.kinds.lock().await.insert(key, served.clone());
        Ok(served)
    }

    /// The kind an ApplySet recorded as `Kind.group`, if the server still
    /// serves it; a manifest's version is preferred, else the group's.
    pub(super) async fn served_group_kind(
        &self,
        group_kind: &str,
        manifests: &[Manifest],
    ) -> anyhow::Result<Option<Served>> {
        if let Some(m) = manifests
            .iter()
            .find(|m| applyset::group_kind(&m.api_version, &m.kind) == group_kind)
        {
            return self
                .served(&m.api_version, &m.kind, Self::patience())
                .await
                .map(Some);
        }
        let (kind, group) = group_kind.split_once('.').unwrap_or((group_kind, ""));
        let found = retrying(Self::patience(), || {
            kube::discovery::group(&self.client, group)
        })
        .await;
        match found {
            Ok(api_group) => {
                Ok(api_group
                    .recommended_kind(kind)
                    .map(|(resource, capabilities)| Served {
                        resource,
                        namespaced: capabilities.scope == Scope::Namespaced,
                    }))
            }
            Err(err) if is_not_served(&err) => Ok(None),
            Err(err) => Err(discovery_failed(
                err,
                if group.is_empty() { "/api" } else { "/apis" },
            )),
        }
    }

    pub(super) fn api(&self, served: &Served) -> Api<DynamicObject> {
        if served.namespaced {
            Api::namespaced_with(self.client.clone(), &self.namespace, &served.resource)
        } else {
            Api::all_with(self.client.clone(), &served.resource)
        }
    }

    /// The body sent for a manifest: with our labels.
    fn prepared(&self, manifest: &Manifest) -> Value {
        let mut body = manifest.body.clone();
        let metadata = &mut body["metadata"];
        if !metadata["labels"].is_object() {
            metadata["labels"] = Value::Object(Default::default());
        }
        metadata["labels"][MANAGED_BY] = Value::String(MANAGER.into());
        metadata["labels"][APPLYSET_PART_OF] = Value::String(self.applyset.clone());
        body
    }

    /// Server-side apply; with `dry_run` the server validates and answers
    /// without storing anything.
    async fn apply(
        &self,
        manifest: &Manifest,
        served: &Served,
        dry_run: bool,
        deadline: Instant,
    ) -> anyhow::Result<DynamicObject> {
        let api = self.api(served);
        let mut params = PatchParams::apply(MANAGER).force();
        params.dry_run = dry_run;
        let body = Patch::Apply(self.prepared(manifest));
        retrying(deadline, || api.patch(&manifest.name, &params, &body))
            .await
            .map_err(|err| {
                self.request("patch", served, described(manifest))
                    .failed(err)
            })
    }

    /// Brings the object to the manifest: asks the server what an apply would
    /// change (a dry run, which also validates), and applies only when that is
    /// something, unless `dry_run`. An unchanged object is not written at all.
    /// Its requests are retried while the API server is away until `deadline`.
    ///
    /// A dry run of a namespaced object into a namespace that does not exist
    /// yet is refused by the server; it is a `Create`, and the kind is checked
    /// to be served.
    pub async fn converge(
        &self,
        manifest: &Manifest,
        dry_run: bool,
        deadline: Instant,
    ) -> anyhow::Result<Change> {
        let served = self
            .served(&manifest.api_version, &manifest.kind, deadline)
            .await?;
        if dry_run && served.namespaced && !self.namespace_exists().await? {
            return Ok(Change::Create);
        }
        let api = self.api(&served);
        let live = retrying(deadline, || api.get_opt(&manifest.name))
            .await
            .map_err(|err| {
                self.request("get", &served, described(manifest))
                    .failed(err)
            })?;
        let after = self.apply(manifest, &served, true, deadline).await?;
        let change = match live {
            None => Change::Create,
            Some(live) if comparable(&live) == comparable(&after) => Change::Unchanged,
            Some(_) => Change::Update,
        };
        if !dry_run && change != Change::Unchanged {
            self.apply(manifest, &served, false, deadline).await?;
        }
        Ok(change)
    }

    /// Whether the stack's namespace exists (asked once: for a plan).
    pub async fn namespace_exists(&self) -> anyhow::Result<bool> {
        self.namespace_exists
            .get_or_try_init(|| async {
                let served = self.served("v1", "Namespace", Self::patience()).await?;
                let api = self.api(&served);
                let object = format!("Namespace/{}", self.namespace);
                retrying(Self::patience(), || api.get_opt(&self.namespace))
                    .await
                    .map(|found| found.is_some())
                    .map_err(|err| self.request("get", &served, object).failed(err))
            })
            .await
            .copied()
    }
}

/// A manifest in words, for errors: "StatefulSet/inventory-db (inventory-db.yaml)".
fn described(manifest: &Manifest) -> String {
    format!("{} ({})", manifest.key(), manifest.file)
}

/// The discovery path of an API version: `api/v1`, `apis/apps/v1`.
fn discovery_path(api_version: &str) -> String {
    match api_version.contains('/') {
        true => format!("apis/{api_version}"),
        false => format!("api/{api_version}"),
    }
}

/// A failed discovery request (`url` as RBAC's nonResourceURLs name it).
fn discovery_failed(err: kube::Error, url: &str) -> anyhow::Error {
    Request {
        verb: "get",
        resource: url.to_string(),
        namespace: None,
        object: format!("the kinds the API server serves ({url})"),
    }
    .failed(err)
}

/// An object without what the server changes on every write.
fn comparable(object: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
            "selfLink",
        ] {
            metadata.remove(field);
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volatile_fields_do_not_count_as_changes() {
        let a: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "resourceVersion": "1", "managedFields": [{"manager": "x"}]},
            "data": {"k": "v"}
        }))
        .unwrap();
        let mut b = a.clone();
        b.metadata.resource_version = Some("2".into());
        assert_eq!(comparable(&a), comparable(&b));
        b.data["data"]["k"] = Value::String("w".into());
        assert_ne!(comparable(&a), comparable(&b));
    }
}
