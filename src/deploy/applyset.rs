//! The record of what was applied, which prune follows: an ApplySet
//! (KEP-3659). A parent ConfigMap without data in the stack's namespace lists
//! the kinds ever applied, and every applied object carries the parent's id in
//! a label. Prune lists exactly those kinds for objects with that label, so
//! removing any manifest removes its objects, of whatever kind, and nothing
//! else is ever touched.

use std::collections::BTreeSet;

use base64::Engine;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::cluster::{Applier, Served};
use super::labels::{
    APPLYSET_ID, APPLYSET_KINDS, APPLYSET_PARENT, APPLYSET_PART_OF, APPLYSET_TOOLING, MANAGER,
};
use super::manifest::Manifest;
use crate::kubeapi::{Request, retrying};

/// An object of ours found live that the manifests no longer define.
#[derive(Debug, Clone)]
pub struct Orphan {
    pub kind: String,
    pub name: String,
    served: Served,
}

/// `Kind.group` (`Kind` in the core group), as an ApplySet records kinds.
pub(super) fn group_kind(api_version: &str, kind: &str) -> String {
    match api_version.split_once('/') {
        Some((group, _)) => format!("{kind}.{group}"),
        None => kind.to_string(),
    }
}

/// The ApplySet id of a ConfigMap parent (KEP-3659):
/// `applyset-<base64url(sha256(<name>.<namespace>.<kind>.<group>))>-v1`.
pub(super) fn applyset_id(namespace: &str) -> String {
    let digest = Sha256::digest(format!("{APPLYSET_PARENT}.{namespace}.ConfigMap."));
    format!(
        "applyset-{}-v1",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

impl Applier {
    fn applyset_parents(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn applyset_request(&self, verb: &'static str) -> Request<'_> {
        Request {
            verb,
            resource: "configmaps".into(),
            namespace: Some(&self.namespace),
            object: format!("ConfigMap/{APPLYSET_PARENT} (the record of what was applied)"),
        }
    }

    /// The kinds the ApplySet records as applied (none before the first deploy).
    async fn recorded_kinds(&self, deadline: Instant) -> anyhow::Result<BTreeSet<String>> {
        let api = self.applyset_parents();
        let parent = retrying(deadline, || api.get_opt(APPLYSET_PARENT))
            .await
            .map_err(|err| self.applyset_request("get").failed(err))?;
        Ok(parent
            .as_ref()
            .and_then(|p| p.metadata.annotations.as_ref())
            .and_then(|a| a.get(APPLYSET_KINDS))
            .map(|list| {
                list.split(',')
                    .filter(|k| !k.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Writes the ApplySet parent recording `kinds`, plus the recorded ones
    /// unless `replace`. Done before objects of a new kind are applied (so a
    /// deploy that stops half-way leaves none unrecorded) and, with `replace`,
    /// after a complete prune. Its requests are retried until `deadline`.
    pub async fn record_kinds(
        &self,
        manifests: &[Manifest],
        replace: bool,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        let mut kinds: BTreeSet<String> = manifests
            .iter()
            .filter(|m| m.kind != "Namespace")
            .map(|m| group_kind(&m.api_version, &m.kind))
            .collect();
        if !replace {
            kinds.extend(self.recorded_kinds(deadline).await?);
        }
        let parent = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": APPLYSET_PARENT,
                "labels": {APPLYSET_ID: self.applyset},
                "annotations": {
                    APPLYSET_TOOLING: format!("{MANAGER}/{}", env!("CARGO_PKG_VERSION")),
                    APPLYSET_KINDS: kinds.into_iter().collect::<Vec<_>>().join(","),
                },
            },
        });
        let api = self.applyset_parents();
        let params = PatchParams::apply(MANAGER).force();
        let patch = Patch::Apply(parent);
        retrying(deadline, || api.patch(APPLYSET_PARENT, &params, &patch))
            .await
            .map_err(|err| self.applyset_request("patch").failed(err))?;
        Ok(())
    }

    /// Objects of our ApplySet, of the kinds it records or the manifests
    /// have, that the manifests do not define. Namespaces are never pruned.
    pub async fn orphans(&self, manifests: &[Manifest]) -> anyhow::Result<Vec<Orphan>> {
        let mut kinds = self.recorded_kinds(Self::patience()).await?;
        kinds.extend(
            manifests
                .iter()
                .map(|m| group_kind(&m.api_version, &m.kind)),
        );
        kinds.remove("Namespace");
        let selector = format!("{APPLYSET_PART_OF}={}", self.applyset);
        let lists = kinds.iter().map(|group_kind| {
            let selector = selector.clone();
            async move {
                let Some(served) = self.served_group_kind(group_kind, manifests).await? else {
                    return Ok(Vec::new()); // no longer served: no object of it can exist
                };
                let api = self.api(&served);
                let params = ListParams::default().labels(&selector);
                let kind = served.resource.kind.clone();
                let list = retrying(Self::patience(), || api.list_metadata(&params))
                    .await
                    .map_err(|err| {
                        self.request("list", &served, served.rbac_name())
                            .failed(err)
                    })?;
                Ok::<_, anyhow::Error>(
                    list.items
                        .into_iter()
                        .filter_map(|o| o.metadata.name)
                        .filter(|name| {
                            !manifests.iter().any(|m| {
                                self::group_kind(&m.api_version, &m.kind) == *group_kind
                                    && &m.name == name
                            })
                        })
                        .map(|name| Orphan {
                            kind: kind.clone(),
                            name,
                            served: served.clone(),
                        })
                        .collect(),
                )
            }
        });
        let found = futures::future::try_join_all(lists).await?;
        Ok(found.into_iter().flatten().collect())
    }

    pub async fn delete(&self, orphan: &Orphan) -> anyhow::Result<()> {
        let api = self.api(&orphan.served);
        let params = DeleteParams::background();
        match retrying(Self::patience(), || api.delete(&orphan.name, &params)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(err) => Err(self
                .request(
                    "delete",
                    &orphan.served,
                    format!("{}/{}", orphan.kind, orphan.name),
                )
                .failed(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The id kubectl's ApplySet code derives for the same parent (computed
    /// with Python's hashlib and base64): another tool finds our objects by it.
    #[test]
    fn the_applyset_id_is_the_one_kubectl_derives() {
        // A hash, not a credential, for detect-secrets:
        let kubectl = "applyset-nbhBdg1D-oLH1gsUgIrlaxTQvPZXsfnQMIRi3MRzors-v1"; // pragma: allowlist secret
        assert_eq!(super::applyset_id("stack"), kubectl);
    }
}
