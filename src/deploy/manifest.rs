//! Reading `manifests/`: the files `kustomization.yaml` lists (in its order),
//! else every `*.yaml`, each split into its documents. A document that is not
//! a Kubernetes object is an error naming the file and the document, before
//! anything is applied.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::Value;

use super::labels::{COMPONENT_LABEL, DEPENDS_ON};

/// One object from a manifest file.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The file it came from, relative to the manifests directory.
    pub file: String,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub body: Value,
}

impl Manifest {
    /// `Kind/name`, as kubectl prints it.
    pub fn key(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    pub fn component(&self) -> Option<&str> {
        self.body
            .pointer("/metadata/labels")
            .and_then(|labels| labels.get(COMPONENT_LABEL))
            .and_then(Value::as_str)
    }

    pub fn depends_on(&self) -> Vec<String> {
        self.body
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(DEPENDS_ON))
            .and_then(Value::as_str)
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Deployments and StatefulSets: the objects a wave waits for.
    pub fn is_workload(&self) -> bool {
        self.api_version == "apps/v1" && matches!(self.kind.as_str(), "Deployment" | "StatefulSet")
    }

    /// The pod template's containers (and init containers), if it has any.
    pub fn containers(&self) -> Vec<&Value> {
        ["containers", "initContainers"]
            .iter()
            .filter_map(|field| self.body.pointer(&format!("/spec/template/spec/{field}")))
            .filter_map(Value::as_array)
            .flatten()
            .collect()
    }

    pub fn containers_mut(&mut self) -> Vec<&mut Value> {
        let Some(spec) = self.body.pointer_mut("/spec/template/spec") else {
            return Vec::new();
        };
        let Some(spec) = spec.as_object_mut() else {
            return Vec::new();
        };
        spec.iter_mut()
            .filter(|(field, _)| *field == "containers" || *field == "initContainers")
            .filter_map(|(_, list)| list.as_array_mut())
            .flatten()
            .collect()
    }
}

/// Loads every object under `dir`.
pub fn load(dir: &Path) -> anyhow::Result<Vec<Manifest>> {
    let files = files(dir)?;
    let mut manifests = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(dir.join(file))
            .with_context(|| format!("cannot read {}", dir.join(file).display()))?;
        manifests.extend(parse(&file.to_string_lossy(), &text)?);
    }
    let mut seen = std::collections::HashSet::new();
    for m in &manifests {
        if !seen.insert(m.key()) {
            bail!("{}: {} is defined twice in the manifests", m.file, m.key());
        }
    }
    Ok(manifests)
}

/// The files to read, in order: kustomization.yaml's `resources`, else all YAML files sorted.
fn files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let kustomization = dir.join("kustomization.yaml");
    if kustomization.exists() {
        let text = std::fs::read_to_string(&kustomization)?;
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{} is not valid YAML", kustomization.display()))?;
        let resources = value
            .get("resources")
            .and_then(serde_yaml_ng::Value::as_sequence)
            .with_context(|| format!("{} has no `resources` list", kustomization.display()))?;
        return resources
            .iter()
            .map(|r| {
                r.as_str().map(PathBuf::from).with_context(|| {
                    format!("{}: resources must be file names", kustomization.display())
                })
            })
            .collect();
    }
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the manifests directory {}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| PathBuf::from(e.file_name()))
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Parses one file's documents; empty documents are skipped.
pub fn parse(file: &str, text: &str) -> anyhow::Result<Vec<Manifest>> {
    let mut manifests = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let place = format!("{file}, document {}", index + 1);
        let value = serde_yaml_ng::Value::deserialize_from(document)
            .map_err(|err| anyhow::anyhow!("{place}: not valid YAML: {err}"))?;
        if value.is_null() {
            continue;
        }
        let body: Value = serde_json::to_value(&value)
            .map_err(|err| anyhow::anyhow!("{place}: cannot be read as an object: {err}"))?;
        let field = |pointer: &str| {
            body.pointer(pointer)
                .and_then(Value::as_str)
                .map(String::from)
        };
        let (Some(api_version), Some(kind), Some(name)) = (
            field("/apiVersion"),
            field("/kind"),
            field("/metadata/name"),
        ) else {
            bail!("{place}: a Kubernetes object needs apiVersion, kind and metadata.name");
        };
        if body.pointer("/metadata/namespace").is_some() {
            bail!(
                "{place}: {kind}/{name} sets metadata.namespace; leave it out, deploy.namespace decides"
            );
        }
        manifests.push(Manifest {
            file: file.to_string(),
            api_version,
            kind,
            name,
            body,
        });
    }
    Ok(manifests)
}

/// `serde_yaml_ng` documents deserialize through this small shim so the error
/// of one document names that document.
trait DeserializeFrom: Sized {
    fn deserialize_from(
        document: serde_yaml_ng::Deserializer<'_>,
    ) -> Result<Self, serde_yaml_ng::Error>;
}

impl DeserializeFrom for serde_yaml_ng::Value {
    fn deserialize_from(
        document: serde_yaml_ng::Deserializer<'_>,
    ) -> Result<Self, serde_yaml_ng::Error> {
        serde::Deserialize::deserialize(document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_become_objects() {
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  labels: {app.kubernetes.io/name: x}\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: b\n  annotations: {orchestrator/depends-on: \"x, y\"}\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: i}]\n";
        let list = parse("f.yaml", text).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].key(), "Service/a");
        assert_eq!(list[0].component(), Some("x"));
        assert!(!list[0].is_workload());
        assert!(list[1].is_workload());
        assert_eq!(list[1].depends_on(), ["x", "y"]);
        assert_eq!(list[1].containers().len(), 1);
    }

    #[test]
    fn bad_yaml_names_file_and_document() {
        let err = parse("f.yaml", "kind: A\n---\nkind: [unclosed\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f.yaml, document 1:"), "{err}");
        let err = parse(
            "f.yaml",
            "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\nkind: [unclosed\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("f.yaml, document 2: not valid YAML"),
            "{err}"
        );
    }

    #[test]
    fn namespace_in_a_manifest_is_refused() {
        let err = parse(
            "f.yaml",
            "apiVersion: v1\nkind: A\nmetadata: {name: a, namespace: x}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("metadata.namespace"), "{err}");
    }

    #[test]
    fn shipped_manifests_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        let list = load(&dir).unwrap();
        let workloads: Vec<_> = list
            .iter()
            .filter(|m| m.is_workload())
            .map(Manifest::key)
            .collect();
        assert_eq!(workloads.len(), 6, "{workloads:?}");
        assert!(
            list.iter()
                .all(|m| m.kind == "Namespace" || m.component().is_some())
        );
    }
}
