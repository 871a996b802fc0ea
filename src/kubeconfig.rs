//! The cluster's kubeconfig: K3s's `k3s.yaml` made usable from the host (server
//! at the master's address, every entry named `orchestrator`, the app namespace
//! selected), and merged into or removed from the user's kubeconfig without
//! touching anything else in it.
//!
//! The files are handled as YAML values, not as typed kubeconfigs, so fields
//! this tool does not know (extensions, exec plugins, preferences) survive.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_yaml_ng::{Mapping, Value};

use crate::kubeapi::CONTEXT;
use crate::state;

/// The lists a kubeconfig names its entries in.
const SECTIONS: [&str; 3] = ["clusters", "users", "contexts"];

/// Turns the master's `k3s.yaml` into the cluster's kubeconfig: the current
/// context's cluster and user (credentials kept as they are) under the name
/// `orchestrator`, its server `server`, its namespace `namespace`.
pub fn rewrite(k3s_yaml: &str, server: &str, namespace: &str) -> anyhow::Result<String> {
    // Never quote the input in an error: it holds credentials.
    let doc: Value = serde_yaml_ng::from_str(k3s_yaml)
        .map_err(|err| anyhow::anyhow!("the master's k3s.yaml is not valid YAML ({err})"))?;
    let context_name = match doc.get("current-context").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => first_name(&doc, "contexts").context("the master's k3s.yaml has no context")?,
    };
    let context = entry(&doc, "contexts", &context_name, "context")?;
    let cluster_name = field_str(context, "cluster")?;
    let user_name = field_str(context, "user")?;
    let mut cluster = entry(&doc, "clusters", &cluster_name, "cluster")?.clone();
    let user = entry(&doc, "users", &user_name, "user")?.clone();
    let Some(cluster_map) = cluster.as_mapping_mut() else {
        bail!("the master's k3s.yaml has a malformed cluster {cluster_name:?}");
    };
    cluster_map.insert("server".into(), server.into());

    let mut context = Mapping::new();
    context.insert("cluster".into(), CONTEXT.into());
    context.insert("user".into(), CONTEXT.into());
    context.insert("namespace".into(), namespace.into());
    let mut out = Mapping::new();
    out.insert("apiVersion".into(), "v1".into());
    out.insert("kind".into(), "Config".into());
    out.insert("clusters".into(), named("cluster", cluster));
    out.insert("users".into(), named("user", user));
    out.insert("contexts".into(), named("context", Value::Mapping(context)));
    out.insert("current-context".into(), CONTEXT.into());
    Ok(serde_yaml_ng::to_string(&out)?)
}

/// Puts the `orchestrator` cluster, user and context of `ours` (a kubeconfig
/// from [`rewrite`]) into `user` (the user's kubeconfig, `None` when there is
/// none yet), replacing earlier ones of that name. The current context becomes
/// `orchestrator` only when none was set.
pub fn merge(user: Option<&str>, ours: &str) -> anyhow::Result<String> {
    let ours: Value =
        serde_yaml_ng::from_str(ours).context("the cluster's kubeconfig is not valid YAML")?;
    let mut doc = parse_user(user)?;
    let map = doc.as_mapping_mut().expect("parse_user returns a mapping");
    for section in SECTIONS {
        let mine = ours
            .get(section)
            .and_then(Value::as_sequence)
            .and_then(|entries| entries.iter().find(|e| name_of(e) == Some(CONTEXT)))
            .with_context(|| {
                format!("the cluster's kubeconfig has no {section} entry {CONTEXT:?}")
            })?
            .clone();
        let list = section_mut(map, section)?;
        list.retain(|e| name_of(e) != Some(CONTEXT));
        list.push(mine);
    }
    let current = map.get("current-context").and_then(Value::as_str);
    if current.is_none_or(str::is_empty) {
        map.insert("current-context".into(), CONTEXT.into());
    }
    map.entry("apiVersion".into())
        .or_insert_with(|| "v1".into());
    map.entry("kind".into()).or_insert_with(|| "Config".into());
    Ok(serde_yaml_ng::to_string(&doc)?)
}

/// Takes the `orchestrator` cluster, user and context out of `user`; `None`
/// when there was nothing to take.
pub fn remove(user: &str) -> anyhow::Result<Option<String>> {
    let mut doc = parse_user(Some(user))?;
    let map = doc.as_mapping_mut().expect("parse_user returns a mapping");
    let mut changed = false;
    for section in SECTIONS {
        let list = section_mut(map, section)?;
        let before = list.len();
        list.retain(|e| name_of(e) != Some(CONTEXT));
        changed |= list.len() != before;
    }
    if map.get("current-context").and_then(Value::as_str) == Some(CONTEXT) {
        map.remove("current-context");
        changed = true;
    }
    Ok(changed
        .then(|| serde_yaml_ng::to_string(&doc))
        .transpose()?)
}

/// The file kubectl would write to: the first path in `$KUBECONFIG`, else
/// `~/.kube/config`.
pub fn user_path() -> anyhow::Result<PathBuf> {
    if let Some(first) = std::env::var_os("KUBECONFIG")
        .as_deref()
        .and_then(|paths| std::env::split_paths(paths).find(|p| !p.as_os_str().is_empty()))
    {
        return Ok(first);
    }
    let home = std::env::var_os("HOME").context("neither KUBECONFIG nor HOME is set")?;
    Ok(Path::new(&home).join(".kube/config"))
}

/// Merges `ours` into the user's kubeconfig at `path`; writes only when that
/// changes the file. Returns whether it did.
pub fn install(path: &Path, ours: &str) -> anyhow::Result<bool> {
    let existing = read_optional(path)?;
    let merged = merge(existing.as_deref(), ours)
        .with_context(|| format!("cannot merge the cluster's context into {}", path.display()))?;
    if existing.as_deref() == Some(merged.as_str()) {
        return Ok(false);
    }
    replace(path, &merged)?;
    Ok(true)
}

/// Removes the `orchestrator` entries from the user's kubeconfig at `path`, if
/// it has any. Returns whether it did.
pub fn uninstall(path: &Path) -> anyhow::Result<bool> {
    let Some(existing) = read_optional(path)? else {
        return Ok(false);
    };
    let Some(rest) =
        remove(&existing).with_context(|| format!("cannot edit {}", path.display()))?
    else {
        return Ok(false);
    };
    replace(path, &rest)?;
    Ok(true)
}

fn read_optional(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(anyhow::Error::new(err).context(format!("cannot read {}", path.display()))),
    }
}

/// Replaces the file whole (temporary file and rename), through a symlink to
/// its target, keeping its permissions when it existed.
fn replace(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let (target, mode) = match std::fs::canonicalize(path) {
        Ok(target) => {
            let mode = std::fs::metadata(&target)?.permissions().mode();
            (target, Some(mode))
        }
        Err(_) => (path.to_path_buf(), None),
    };
    state::write_private(&target, contents.as_bytes())?;
    if let Some(mode) = mode {
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot restore the permissions of {}", target.display()))?;
    }
    Ok(())
}

fn parse_user(text: Option<&str>) -> anyhow::Result<Value> {
    let doc: Value = match text {
        Some(text) => serde_yaml_ng::from_str(text)
            .map_err(|err| anyhow::anyhow!("not valid YAML ({err})"))?,
        None => Value::Null,
    };
    match doc {
        // An empty file is an empty kubeconfig, as kubectl reads it.
        Value::Null => Ok(Value::Mapping(Mapping::new())),
        Value::Mapping(_) => Ok(doc),
        _ => bail!("not a kubeconfig (its top level is not a mapping)"),
    }
}

/// The named list `section` of a kubeconfig, created when absent (or null).
fn section_mut<'a>(map: &'a mut Mapping, section: &str) -> anyhow::Result<&'a mut Vec<Value>> {
    let slot = map.entry(section.into()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Sequence(Vec::new());
    }
    slot.as_sequence_mut()
        .with_context(|| format!("its {section:?} is not a list"))
}

fn name_of(entry: &Value) -> Option<&str> {
    entry.get("name").and_then(Value::as_str)
}

fn first_name(doc: &Value, section: &str) -> Option<String> {
    doc.get(section)?
        .as_sequence()?
        .first()
        .and_then(name_of)
        .map(str::to_string)
}

/// The body (`cluster:`, `user:`, `context:`) of the entry named `name` in `section`.
fn entry<'a>(doc: &'a Value, section: &str, name: &str, body: &str) -> anyhow::Result<&'a Value> {
    doc.get(section)
        .and_then(Value::as_sequence)
        .and_then(|entries| entries.iter().find(|e| name_of(e) == Some(name)))
        .and_then(|e| e.get(body))
        .with_context(|| format!("the master's k3s.yaml has no {body} named {name:?}"))
}

fn field_str(map: &Value, key: &str) -> anyhow::Result<String> {
    map.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("the master's k3s.yaml has a context without {key:?}"))
}

fn named(body: &str, value: Value) -> Value {
    let mut entry = Mapping::new();
    entry.insert("name".into(), CONTEXT.into());
    entry.insert(body.into(), value);
    Value::Sequence(vec![Value::Mapping(entry)])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What K3s writes to /etc/rancher/k3s/k3s.yaml.
    const K3S_YAML: &str = "\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
";

    const USER_YAML: &str = "\
apiVersion: v1
kind: Config
clusters:
- name: work
  cluster:
    server: https://work.example:443
    extensions:
    - name: keep-me
      extension: {a: 1}
users:
- name: work-admin
  user:
    exec: {command: work-login, apiVersion: client.authentication.k8s.io/v1}
contexts:
- name: work
  context: {cluster: work, user: work-admin}
current-context: work
preferences: {colors: true}
";

    fn ours() -> String {
        rewrite(K3S_YAML, "https://192.168.56.10:6443", "shop").unwrap()
    }

    fn names(doc: &Value, section: &str) -> Vec<String> {
        doc[section]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| name_of(e).unwrap().to_string())
            .collect()
    }

    #[test]
    fn rewrite_points_at_the_master_and_renames_everything() {
        let doc: Value = serde_yaml_ng::from_str(&ours()).unwrap();
        let cluster = &doc["clusters"][0];
        assert_eq!(cluster["name"], "orchestrator");
        assert_eq!(cluster["cluster"]["server"], "https://192.168.56.10:6443");
        assert_eq!(
            cluster["cluster"]["certificate-authority-data"],
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="
        );
        assert_eq!(doc["users"][0]["name"], "orchestrator");
        assert_eq!(doc["users"][0]["user"]["client-key-data"], "a2V5");
        let context = &doc["contexts"][0];
        assert_eq!(context["name"], "orchestrator");
        assert_eq!(context["context"]["cluster"], "orchestrator");
        assert_eq!(context["context"]["user"], "orchestrator");
        assert_eq!(context["context"]["namespace"], "shop");
        assert_eq!(doc["current-context"], "orchestrator");
        // kube-rs reads the result.
        let typed: kube::config::Kubeconfig = serde_yaml_ng::from_str(&ours()).unwrap();
        assert_eq!(typed.current_context.as_deref(), Some("orchestrator"));
    }

    #[test]
    fn rewrite_keeps_file_and_token_credentials() {
        let sim = "\
apiVersion: v1
kind: Config
clusters:
- name: sim
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: /tmp/kube-sim/pki/ca.crt
users:
- name: admin
  user:
    token: sim-admin-token
contexts:
- name: sim
  context: {cluster: sim, user: admin}
current-context: sim
";
        let doc: Value =
            serde_yaml_ng::from_str(&rewrite(sim, "https://127.0.0.1:6443", "x").unwrap()).unwrap();
        assert_eq!(
            doc["clusters"][0]["cluster"]["certificate-authority"],
            "/tmp/kube-sim/pki/ca.crt"
        );
        assert_eq!(doc["users"][0]["user"]["token"], "sim-admin-token");
    }

    #[test]
    fn rewrite_rejects_garbage_without_quoting_it() {
        let err = rewrite("secret-token: [unclosed", "https://x:6443", "ns").unwrap_err();
        assert!(!format!("{err:#}").contains("secret-token"), "{err:#}");
        assert!(rewrite("apiVersion: v1\n", "https://x:6443", "ns").is_err());
    }

    #[test]
    fn merge_into_nothing_makes_ours_current() {
        let doc: Value = serde_yaml_ng::from_str(&merge(None, &ours()).unwrap()).unwrap();
        assert_eq!(names(&doc, "contexts"), ["orchestrator"]);
        assert_eq!(doc["current-context"], "orchestrator");
        let empty: Value = serde_yaml_ng::from_str(&merge(Some(""), &ours()).unwrap()).unwrap();
        assert_eq!(empty, doc);
    }

    #[test]
    fn merge_keeps_everything_else_and_the_current_context() {
        let merged = merge(Some(USER_YAML), &ours()).unwrap();
        let doc: Value = serde_yaml_ng::from_str(&merged).unwrap();
        assert_eq!(names(&doc, "clusters"), ["work", "orchestrator"]);
        assert_eq!(names(&doc, "users"), ["work-admin", "orchestrator"]);
        assert_eq!(names(&doc, "contexts"), ["work", "orchestrator"]);
        assert_eq!(doc["current-context"], "work");
        assert_eq!(doc["preferences"]["colors"], true);
        assert_eq!(
            doc["clusters"][0]["cluster"]["extensions"][0]["name"],
            "keep-me"
        );
        assert_eq!(doc["users"][0]["user"]["exec"]["command"], "work-login");
    }

    #[test]
    fn merge_twice_replaces_ours_and_changes_nothing_more() {
        let once = merge(Some(USER_YAML), &ours()).unwrap();
        assert_eq!(merge(Some(&once), &ours()).unwrap(), once);
        let moved = rewrite(K3S_YAML, "https://10.0.0.5:6443", "shop").unwrap();
        let doc: Value = serde_yaml_ng::from_str(&merge(Some(&once), &moved).unwrap()).unwrap();
        assert_eq!(names(&doc, "clusters"), ["work", "orchestrator"]);
        assert_eq!(
            doc["clusters"][1]["cluster"]["server"],
            "https://10.0.0.5:6443"
        );
    }

    #[test]
    fn remove_takes_out_only_ours() {
        let merged = merge(Some(USER_YAML), &ours()).unwrap();
        let rest: Value = serde_yaml_ng::from_str(&remove(&merged).unwrap().unwrap()).unwrap();
        let original: Value = serde_yaml_ng::from_str(USER_YAML).unwrap();
        assert_eq!(rest, original);
        assert_eq!(remove(USER_YAML).unwrap(), None);
    }

    #[test]
    fn remove_clears_our_current_context() {
        let merged = merge(None, &ours()).unwrap();
        let rest: Value = serde_yaml_ng::from_str(&remove(&merged).unwrap().unwrap()).unwrap();
        assert!(rest.get("current-context").is_none());
        assert!(rest["contexts"].as_sequence().unwrap().is_empty());
    }

    #[test]
    fn install_keeps_the_file_mode_and_uninstall_restores_the_rest() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, USER_YAML).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(install(&path, &ours()).unwrap());
        assert!(!install(&path, &ours()).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        assert!(uninstall(&path).unwrap());
        assert!(!uninstall(&path).unwrap());
        assert!(!uninstall(&dir.path().join("absent")).unwrap());
    }

    #[test]
    fn install_creates_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".kube/config");
        assert!(install(&path, &ours()).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
