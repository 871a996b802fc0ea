//! `deploy` and `plan` end to end: the built binary against a real API server
//! (kube-sim, `#[ignore]`d; run with `KUBE_SIM_KUBECONFIG` set and
//! `--ignored`), with a fake `docker` where images are built and pushed.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::{ApiResource, pinned_kind};
use support::FakeBin;
use support::kube_sim::{TestNamespace, client, kubeconfig as kube_sim};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// A project directory whose configuration deploys into its own namespace.
struct Project {
    dir: tempfile::TempDir,
    namespace: TestNamespace,
    manifests: PathBuf,
}

impl Project {
    /// With a copy of the repository's manifests, changed by `edit` (file name, text) → text.
    fn new(edit: impl Fn(&str, String) -> String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Deleted with the project: kube-sim's two nodes have room for only a few stacks.
        let namespace = TestNamespace::new(
            "deploy",
            &std::env::var("KUBE_SIM_KUBECONFIG").unwrap_or_default(),
        );
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        for entry in std::fs::read_dir(Path::new(REPO).join("manifests")).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let text = edit(&name, std::fs::read_to_string(entry.path()).unwrap());
            std::fs::write(manifests.join(&name), text).unwrap();
        }
        let config = format!(
            "[registry]\nnamespace = \"student\"\n[deploy]\nnamespace = \"{}\"\ndockerfiles = \"{REPO}/dockerfiles\"\ntimeout_secs = 60\n",
            namespace.name
        );
        std::fs::write(dir.path().join("orchestrator.toml"), config).unwrap();
        Project {
            dir,
            namespace,
            manifests,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs the binary in the project with `args`, PATH set to `path`.
    fn run_with_path(&self, path: &str, args: &[&str]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_orchestrator"))
            .args(args)
            .current_dir(self.path())
            .env("PATH", path)
            .env("HOME", self.path())
            .env_remove("KUBECONFIG")
            .env_remove("DOCKERHUB_USERNAME")
            .env_remove("DOCKER_CONFIG")
            .output()
            .unwrap()
    }

    fn deploy(&self, kubeconfig: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "deploy",
            "--skip-build",
            "--skip-push",
            "--kubeconfig",
            kubeconfig,
        ];
        args.extend_from_slice(extra);
        self.run_with_path(&std::env::var("PATH").unwrap(), &args)
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The entries of `after` that differ from `before`, for a readable failure.
fn changed(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| format!("{k}: {:?} -> {:?}", before.get(k), after.get(k)))
        .collect()
}

/// `Kind/name` → what deploy last wrote of every object of ours in the
/// namespace: its generation and the field manager's entry (written only when
/// an apply changes something; status updates by controllers do not count).
async fn versions(client: &kube::Client, namespace: &str) -> BTreeMap<String, String> {
    let kinds = [
        ("", "v1", "ConfigMap"),
        ("", "v1", "Secret"),
        ("", "v1", "Service"),
        ("apps", "v1", "Deployment"),
        ("apps", "v1", "StatefulSet"),
        ("autoscaling", "v1", "HorizontalPodAutoscaler"),
        ("networking.k8s.io", "v1", "NetworkPolicy"),
    ];
    let mut found = BTreeMap::new();
    for (group, version, kind) in kinds {
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let (resource, _): (ApiResource, _) = pinned_kind(client, &gvk).await.unwrap();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let list = api
            .list(&ListParams::default().labels("app.kubernetes.io/managed-by=orchestrator"))
            .await
            .unwrap();
        for object in list.items {
            let name = object.metadata.name.clone().unwrap();
            let ours = object
                .metadata
                .managed_fields
                .iter()
                .flatten()
                .find(|f| f.manager.as_deref() == Some("orchestrator"))
                .map(|f| serde_json::to_string(f).unwrap());
            found.insert(
                format!("{kind}/{name}"),
                format!("{:?} {ours:?}", object.metadata.generation),
            );
        }
    }
    found
}

#[test]
fn unreachable_cluster_fails_fast_and_names_what_was_tried() {
    let project = Project::new(|_, text| text);
    let kubeconfig = project.path().join("dead-kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster: {server: 'https://127.0.0.1:9'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: dead\n  context: {cluster: dead, user: u}\ncurrent-context: dead\n",
    )
    .unwrap();
    let started = Instant::now();
    let output = project.deploy(kubeconfig.to_str().unwrap(), &[]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(4), "{out}");
    assert!(
        out.contains("context dead")
            && out.contains("dead-kubeconfig")
            && out.contains("127.0.0.1:9"),
        "{out}"
    );
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
    assert!(
        !project
            .path()
            .join(".orchestrator/credentials.env")
            .exists(),
        "nothing may change"
    );
}

#[test]
fn pushing_needs_docker_logged_in() {
    let project = Project::new(|_, text| text);
    let bin = FakeBin::new(project.path());
    let calls = project.path().join("docker-calls");
    bin.recorder("docker", &calls);
    let output = project.run_with_path(
        bin.path().to_str().unwrap(),
        &["deploy", "--kubeconfig", "/nonexistent"],
    );
    let out = text(&output);
    assert_eq!(output.status.code(), Some(5), "{out}");
    assert!(
        out.contains("docker is not logged in to docker.io")
            && out.contains("run `docker login -u student`"),
        "{out}"
    );
    let calls = std::fs::read_to_string(&calls).unwrap_or_default();
    assert!(
        !calls
            .lines()
            .any(|call| call.starts_with("build ") || call.starts_with("push ")),
        "nothing may be built before the login is known: {calls}"
    );
}

#[test]
fn missing_docker_is_a_missing_prerequisite() {
    let project = Project::new(|_, text| text);
    let bin = FakeBin::new(project.path());
    let output = project.run_with_path(bin.path().to_str().unwrap(), &["deploy"]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(text(&output).contains("docker"), "{}", text(&output));
}

#[test]
fn bad_manifest_is_a_usage_error_naming_file_and_document() {
    let project = Project::new(|name, text| {
        if name == "rabbitmq.yaml" {
            format!("{text}\n---\nkind: [unclosed\n")
        } else {
            text
        }
    });
    let output = project.deploy("/nonexistent", &[]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(2), "{out}");
    assert!(out.contains("rabbitmq.yaml, document"), "{out}");
}

#[test]
fn unknown_only_component_lists_the_components() {
    let project = Project::new(|_, text| text);
    let output = project.deploy("/nonexistent", &["--only", "billing"]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(2), "{out}");
    assert!(
        out.contains("--only billing: no such component") && out.contains("billing-app"),
        "{out}"
    );
}

#[tokio::test]
#[ignore = "needs kube-sim: KUBE_SIM_KUBECONFIG"]
async fn fresh_deploy_is_ready_and_a_second_changes_nothing() {
    let kubeconfig = kube_sim();
    let project = Project::new(|_, text| text);
    let started = Instant::now();
    let output = project.deploy(&kubeconfig, &[]);
    let fresh = started.elapsed();
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("gateway: http://127.0.0.10:3000"), "{out}");
    assert!(
        out.contains("wave 3/6: billing-db, inventory-db, rabbitmq"),
        "{out}"
    );

    let client = client(&kubeconfig).await;
    let ns = &project.namespace.name;
    let sets = Api::<StatefulSet>::namespaced(client.clone(), ns);
    for name in ["inventory-db", "billing-db", "rabbitmq", "billing-app"] {
        let set = sets.get(name).await.unwrap();
        assert_eq!(set.status.unwrap().ready_replicas, Some(1), "{name}");
        let claims = set.spec.unwrap().volume_claim_templates.unwrap_or_default();
        assert_eq!(
            claims.len(),
            usize::from(name != "billing-app"),
            "{name} volumes"
        );
    }
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    for name in ["inventory-app", "api-gateway"] {
        let image = deployments
            .get(name)
            .await
            .unwrap()
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .containers[0]
            .image
            .clone()
            .unwrap();
        assert!(
            image.starts_with(&format!("docker.io/student/{name}:")),
            "{image}"
        );
    }
    for name in ["inventory-app", "billing-app", "api-gateway"] {
        let hpa = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns)
            .get(name)
            .await
            .unwrap();
        let spec = hpa.spec.unwrap();
        assert_eq!(
            (
                spec.min_replicas,
                spec.max_replicas,
                spec.target_cpu_utilization_percentage
            ),
            (Some(1), 3, Some(60))
        );
        assert_eq!(spec.scale_target_ref.name, name);
    }
    let services = Api::<Service>::namespaced(client.clone(), ns);
    for (name, port) in [
        ("inventory-db", 5432),
        ("billing-db", 5432),
        ("rabbitmq", 5672),
        ("inventory-app", 8080),
        ("billing-app", 8080),
        ("api-gateway", 3000),
    ] {
        let spec = services.get(name).await.unwrap().spec.unwrap();
        assert_eq!(spec.ports.unwrap()[0].port, port, "{name}");
        if name == "api-gateway" {
            assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        }
    }

    let before = versions(&client, ns).await;
    let started = Instant::now();
    let output = project.deploy(&kubeconfig, &[]);
    let again = started.elapsed();
    assert!(output.status.success(), "{}", text(&output));
    let after = versions(&client, ns).await;
    assert!(
        after == before,
        "a second deploy must change nothing: {:#?}",
        changed(&before, &after)
    );
    println!(
        "fresh deploy {:.2}s, no-op re-deploy {:.2}s",
        fresh.as_secs_f64(),
        again.as_secs_f64()
    );

    let plan = project.run_with_path(
        &std::env::var("PATH").unwrap(),
        &["plan", "--kubeconfig", &kubeconfig],
    );
    let plan = text(&plan);
    assert!(
        plan.contains("unchanged  StatefulSet/rabbitmq") && !plan.contains("update "),
        "{plan}"
    );
}

#[tokio::test]
#[ignore = "needs kube-sim: KUBE_SIM_KUBECONFIG"]
async fn secrets_hold_every_credential_and_nothing_else_does() {
    let kubeconfig = kube_sim();
    let project = Project::new(|_, text| text);
    let output = project.deploy(&kubeconfig, &[]);
    assert!(output.status.success(), "{}", text(&output));
    let credentials =
        std::fs::read_to_string(project.path().join(".orchestrator/credentials.env")).unwrap();
    let values: BTreeMap<String, String> = credentials
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(values.len(), 6, "{credentials}");

    let client = client(&kubeconfig).await;
    let ns = &project.namespace.name;
    let secrets = Api::<Secret>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    let mut held = BTreeMap::new();
    for secret in &secrets.items {
        for (key, value) in secret.data.clone().unwrap_or_default() {
            held.insert(key, String::from_utf8(value.0).unwrap());
        }
    }
    for (key, value) in &values {
        assert_eq!(held.get(key), Some(value), "Secret value for {key}");
    }
    // No other object holds a password, in any field.
    let passwords: Vec<&String> = values
        .iter()
        .filter(|(k, _)| k.ends_with("PASSWORD"))
        .map(|(_, v)| v)
        .collect();
    for kind in [
        "configmaps",
        "services",
        "deployments",
        "statefulsets",
        "pods",
    ] {
        let listing = std::process::Command::new("kubectl")
            .args([
                "--kubeconfig",
                &kubeconfig,
                "-n",
                ns,
                "get",
                kind,
                "-o",
                "json",
            ])
            .output()
            .unwrap();
        assert!(listing.status.success());
        let json = String::from_utf8_lossy(&listing.stdout);
        for password in &passwords {
            assert!(
                !json.contains(password.as_str()),
                "a password appears in the {kind}"
            );
        }
    }
}

/// Deploys the manifests with `file`'s `image` replaced by `broken`, which must
/// fail (exit 1) with every one of `expected` in its output.
async fn deploy_fails_explaining(file: &str, image: &str, broken: &str, expected: &[&str]) {
    let kubeconfig = kube_sim();
    let (from, to) = (format!("image: {image}"), format!("image: {broken}"));
    let project = Project::new(|name, text| {
        if name == file {
            text.replace(&from, &to)
        } else {
            text
        }
    });
    let output = project.deploy(&kubeconfig, &[]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    for phrase in expected {
        assert!(out.contains(phrase), "{phrase:?} missing from:\n{out}");
    }
}

#[tokio::test]
#[ignore = "needs kube-sim: KUBE_SIM_KUBECONFIG"]
async fn image_pull_failure_is_explained_naming_the_pod() {
    deploy_fails_explaining(
        "inventory-db.yaml",
        "postgres",
        "badimage/postgres:16",
        &[
            "StatefulSet/inventory-db: pod inventory-db-0 cannot pull its image badimage/postgres:16: ImagePullBackOff",
            "not pushed",
        ],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs kube-sim: KUBE_SIM_KUBECONFIG"]
async fn crash_loop_is_explained_naming_the_pod() {
    deploy_fails_explaining(
        "rabbitmq.yaml",
        "rabbitmq",
        "crashloop/rabbitmq:3",
        &[
            "container rabbitmq of pod rabbitmq-0 keeps crashing (CrashLoopBackOff",
            "orchestrator logs rabbitmq",
        ],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs kube-sim: KUBE_SIM_KUBECONFIG"]
async fn a_removed_manifest_is_pruned_and_nothing_else() {
    let kubeconfig = kube_sim();
    let project = Project::new(|_, text| text);
    assert!(project.deploy(&kubeconfig, &[]).status.success());
    let client = client(&kubeconfig).await;
    let before = versions(&client, &project.namespace.name).await;
    assert!(before.contains_key("NetworkPolicy/default-deny"));

    std::fs::remove_file(project.manifests.join("network-policies.yaml")).unwrap();
    let kustomization = project.manifests.join("kustomization.yaml");
    let text_now = std::fs::read_to_string(&kustomization)
        .unwrap()
        .replace("  - network-policies.yaml\n", "");
    std::fs::write(&kustomization, text_now).unwrap();
    let output = project.deploy(&kubeconfig, &[]);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("pruned 8"), "{out}");

    let after = versions(&client, &project.namespace.name).await;
    let expected: BTreeMap<String, String> = before
        .into_iter()
        .filter(|(key, _)| !key.starts_with("NetworkPolicy/"))
        .collect();
    assert!(
        after == expected,
        "only the network policies may go, and nothing else may change: {:#?}",
        changed(&expected, &after)
    );
}
