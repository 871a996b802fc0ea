//! `deploy` and `plan` end to end: the built binary against a real API server
//! (kube-sim, `#[ignore]`d; run with `KUBE_SIM_KUBECONFIG` set and
//! `--ignored`), with a fake `docker` where images are built and pushed.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::{ApiResource, pinned_kind};
use support::FakeBin;
use support::docker::{FakeDocker, PREFLIGHT_CALLS};
use support::kube_sim::{client, kubeconfig as kube_sim};
use support::project::{Project, STUDENT, in_file, replaced, text};

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

/// A server that is not an API server: it takes each connection and drops
/// it at once, counting them.
fn dropping_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let taken = Arc::new(AtomicUsize::new(0));
    let counter = taken.clone();
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(connection);
        }
    });
    (port, taken)
}

#[test]
fn unreachable_cluster_fails_at_the_first_try_and_names_what_was_tried() {
    let project = Project::new("deploy", STUDENT, |_, text| text);
    let (port, connections) = dropping_listener();
    let kubeconfig = project.path().join("dead-kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster: {{server: 'https://127.0.0.1:{port}'}}\nusers:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: dead\n  context: {{cluster: dead, user: u}}\ncurrent-context: dead\n"),
    )
    .unwrap();
    let output = project.deploy(kubeconfig.to_str().unwrap(), &[]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(4), "{out}");
    assert!(
        out.contains("context dead")
            && out.contains("dead-kubeconfig")
            && out.contains(&format!("127.0.0.1:{port}")),
        "{out}"
    );
    // Failing fast, without a clock: one connection, no retries up to a deadline.
    assert_eq!(connections.load(Ordering::SeqCst), 1, "{out}");
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
    let project = Project::new("deploy", STUDENT, |_, text| text);
    let bin = FakeBin::new(project.path());
    let docker = FakeDocker::install(&bin, project.path());
    let output = project.run_with_path(bin.path(), &["deploy", "--kubeconfig", "/nonexistent"]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(5), "{out}");
    assert!(
        out.contains("docker is not logged in to docker.io")
            && out.contains("run `docker login -u student`"),
        "{out}"
    );
    // The preflight's questions and nothing else: nothing may be built or
    // pushed before the login is known.
    assert_eq!(docker.sorted_calls(), PREFLIGHT_CALLS);
}

#[test]
fn missing_docker_is_a_missing_prerequisite() {
    let project = Project::new("deploy", STUDENT, |_, text| text);
    let bin = FakeBin::new(project.path());
    let output = project.run_with_path(bin.path(), &["deploy"]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(text(&output).contains("docker"), "{}", text(&output));
}

#[test]
fn bad_manifest_is_a_usage_error_naming_file_and_document() {
    let project = Project::new(
        "deploy",
        STUDENT,
        in_file("rabbitmq.yaml", |text| {
            format!("{text}\n---\nkind: [unclosed\n")
        }),
    );
    let output = project.deploy("/nonexistent", &[]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(2), "{out}");
    assert!(out.contains("rabbitmq.yaml, document"), "{out}");
}

#[test]
fn unknown_only_component_lists_the_components() {
    let project = Project::new("deploy", STUDENT, |_, text| text);
    let output = project.deploy("/nonexistent", &["--only", "billing"]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(2), "{out}");
    assert!(
        out.contains("--only billing: no such component") && out.contains("billing-app"),
        "{out}"
    );
}

/// `--only` on a deployed stack rolls out that one component: what it depends
/// on counts as in place (it used to be refused as "defined by no manifest"),
/// and no other object changes.
#[tokio::test]
#[ignore = "needs kube-sim: KUBE_SIM_KUBECONFIG"]
async fn only_rolls_out_one_component_and_nothing_else() {
    let kubeconfig = kube_sim();
    let project = Project::new("deploy", STUDENT, |_, text| text);
    project.deployed(&kubeconfig, &[]);
    let client = client(&kubeconfig).await;
    let ns = &project.namespace.name;
    let before = versions(&client, ns).await;

    // A change to two apps' pods: only the chosen one's may land.
    let annotated = |text: String| {
        replaced(
            &text,
            "  template:\n    metadata:\n",
            "  template:\n    metadata:\n      annotations: {edited: \"yes\"}\n",
        )
    };
    project.rewrite("api-gateway.yaml", annotated);
    project.rewrite("inventory-app.yaml", annotated);
    let out = project.deployed(&kubeconfig, &["--only", "api-gateway"]);
    assert!(out.contains(": api-gateway\n"), "{out}");
    assert!(!out.contains("inventory-app"), "{out}");
    let after = versions(&client, ns).await;
    let changes = changed(&before, &after);
    assert!(
        changes.len() == 1 && changes[0].starts_with("Deployment/api-gateway:"),
        "only the gateway's Deployment may change: {changes:#?}"
    );
    assert_eq!(before.len(), after.len(), "nothing may be pruned or added");
}

#[tokio::test]
#[ignore = "needs kube-sim: KUBE_SIM_KUBECONFIG"]
async fn fresh_deploy_is_ready_and_a_second_changes_nothing() {
    let kubeconfig = kube_sim();
    let project = Project::new("deploy", STUDENT, |_, text| text);
    let started = Instant::now();
    let out = project.deployed(&kubeconfig, &[]);
    let fresh = started.elapsed();
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
    project.deployed(&kubeconfig, &[]);
    let again = started.elapsed();
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

    let plan = project.run(&["plan", "--kubeconfig", &kubeconfig]);
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
    let project = Project::new("deploy", STUDENT, |_, text| text);
    project.deployed(&kubeconfig, &[]);
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
    let project = Project::new(
        "deploy",
        STUDENT,
        in_file(file, |text| text.replace(&from, &to)),
    );
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
    let project = Project::new("deploy", STUDENT, |_, text| text);
    project.deployed(&kubeconfig, &[]);
    let client = client(&kubeconfig).await;
    let before = versions(&client, &project.namespace.name).await;
    assert!(before.contains_key("NetworkPolicy/default-deny"));

    std::fs::remove_file(project.manifests.join("network-policies.yaml")).unwrap();
    project.rewrite("kustomization.yaml", |text| {
        text.replace("  - network-policies.yaml\n", "")
    });
    let out = project.deployed(&kubeconfig, &[]);
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

/// Deploys with `file`'s `image` replaced by a crash-looping one, which fails
/// naming the crash; then the right image, which must succeed. `edit` changes
/// `file` both times. The project, and the second deploy's output.
fn crash_loop_then_fix(
    kubeconfig: &str,
    file: &str,
    image: &str,
    edit: fn(String) -> String,
) -> (Project, String) {
    let (right, broken) = (
        format!("image: {image}\n"),
        format!("image: crashloop/{image}:1\n"),
    );
    let project = Project::new(
        "deploy",
        STUDENT,
        in_file(file, |text| edit(replaced(&text, &right, &broken))),
    );
    let output = project.deploy(kubeconfig, &[]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("keeps crashing (CrashLoopBackOff"), "{out}");

    project.rewrite(file, edit);
    let output = project.deploy(kubeconfig, &[]);
    let out = text(&output);
    assert!(output.status.success(), "the fix must deploy:\n{out}");
    (project, out)
}

#[tokio::test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
async fn deploying_the_fix_for_a_crash_looping_deployment_succeeds() {
    let kubeconfig = kube_sim();
    let (project, out) =
        crash_loop_then_fix(&kubeconfig, "inventory-app.yaml", "inventory-app", |t| t);
    // A Deployment replaces its old pods itself: nothing is deleted for it.
    assert!(!out.contains("deleted pod"), "{out}");
    let client = client(&kubeconfig).await;
    let deployment = Api::<Deployment>::namespaced(client, &project.namespace.name)
        .get("inventory-app")
        .await
        .unwrap();
    let image = deployment.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap();
    assert!(
        image.starts_with("docker.io/student/inventory-app:"),
        "{image}"
    );
    let status = deployment.status.unwrap();
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas
        ),
        (Some(1), Some(1), Some(1)),
        "only the fixed revision's pod is left: {status:?}"
    );
}

#[tokio::test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
async fn deploying_the_fix_for_a_crash_looping_stateful_set_forces_the_rollback() {
    let kubeconfig = kube_sim();
    // OrderedReady (the default), under which a StatefulSet never replaces a
    // broken pod of an old revision by itself; the shipped manifests say Parallel.
    let ordered: fn(String) -> String =
        |text| replaced(&text, "  podManagementPolicy: Parallel\n", "");
    let (project, out) = crash_loop_then_fix(&kubeconfig, "rabbitmq.yaml", "rabbitmq", ordered);
    assert!(
        out.contains(
            "StatefulSet/rabbitmq: deleted pod rabbitmq-0: it is not Ready and runs an old revision"
        ),
        "{out}"
    );
    let client = client(&kubeconfig).await;
    let ns = &project.namespace.name;
    let set = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .get("rabbitmq")
        .await
        .unwrap();
    let spec = set.spec.unwrap();
    assert_eq!(spec.pod_management_policy.as_deref(), Some("OrderedReady"));
    let status = set.status.unwrap();
    assert_eq!(status.ready_replicas, Some(1));
    let pod = Api::<Pod>::namespaced(client, ns)
        .get("rabbitmq-0")
        .await
        .unwrap();
    let labels = pod.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get("controller-revision-hash"),
        status.update_revision.as_ref(),
        "rabbitmq-0 runs the fixed revision"
    );
    let image = pod.spec.unwrap().containers[0].image.clone().unwrap();
    assert!(!image.contains("crashloop"), "{image}");
}

/// The `Kind/name` lines of a plan's waves with their change.
fn planned_changes(plan: &str) -> Vec<(String, String)> {
    plan.lines()
        .skip_while(|line| !line.starts_with("wave "))
        .take_while(|line| !line.starts_with("prune") && !line.starts_with("images"))
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (change, key) = (words.next()?, words.next()?);
            (line.starts_with("  ") && key.contains('/') && words.next().is_none())
                .then(|| (change.to_string(), key.to_string()))
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
async fn plan_and_dry_run_into_an_absent_namespace_create_everything_and_change_nothing() {
    let kubeconfig = kube_sim();
    let project = Project::new("deploy", STUDENT, |_, text| text);
    let ns = &project.namespace.name;
    for args in [
        vec!["plan", "--kubeconfig", &kubeconfig],
        vec!["deploy", "--dry-run", "--kubeconfig", &kubeconfig],
    ] {
        let output = project.run(&args);
        let out = text(&output);
        assert!(output.status.success(), "{args:?}: {out}");
        let changes = planned_changes(&String::from_utf8_lossy(&output.stdout));
        let keys: Vec<&str> = changes.iter().map(|(_, key)| key.as_str()).collect();
        for expected in [
            format!("Namespace/{ns}"),
            "ConfigMap/app-config".to_string(),
            "StatefulSet/rabbitmq".to_string(),
            "Deployment/api-gateway".to_string(),
            "NetworkPolicy/default-deny".to_string(),
        ] {
            assert!(keys.contains(&expected.as_str()), "{expected}: {out}");
        }
        assert!(
            changes.iter().all(|(change, _)| change == "create"),
            "{args:?}: every object is a create:\n{out}"
        );
        assert!(
            out.contains("the namespace does not exist yet"),
            "{args:?}: {out}"
        );
    }
    let client = client(&kubeconfig).await;
    let namespace = Api::<Namespace>::all(client).get_opt(ns).await.unwrap();
    assert!(namespace.is_none(), "the namespace must not be created");
}

/// The PodDisruptionBudgets kube-sim (Kubernetes 1.20) serves: policy/v1beta1.
fn disruption_budgets(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = kube::api::GroupVersionKind::gvk("policy", "v1beta1", "PodDisruptionBudget");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "poddisruptionbudgets");
    Api::namespaced_with(client.clone(), namespace, &resource)
}

#[tokio::test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
async fn a_removed_disruption_budget_is_pruned_and_nothing_else() {
    let kubeconfig = kube_sim();
    let project = Project::new(
        "deploy",
        STUDENT,
        in_file("kustomization.yaml", |text| {
            replaced(
                &text,
                "  - network-policies.yaml\n",
                "  - network-policies.yaml\n  - rabbitmq-pdb.yaml\n",
            )
        }),
    );
    std::fs::write(
        project.manifests.join("rabbitmq-pdb.yaml"),
        "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: rabbitmq\n  labels:\n    app.kubernetes.io/name: rabbitmq\n    app.kubernetes.io/part-of: orchestrator\nspec:\n  maxUnavailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: rabbitmq\n",
    )
    .unwrap();
    project.deployed(&kubeconfig, &[]);
    let client = client(&kubeconfig).await;
    let ns = &project.namespace.name;
    let budgets = disruption_budgets(&client, ns);
    assert!(budgets.get_opt("rabbitmq").await.unwrap().is_some());
    let before = versions(&client, ns).await;

    std::fs::remove_file(project.manifests.join("rabbitmq-pdb.yaml")).unwrap();
    project.rewrite("kustomization.yaml", |text| text);
    let out = project.deployed(&kubeconfig, &[]);
    assert!(out.contains("pruned 1\n"), "{out}");
    assert!(
        out.contains("PodDisruptionBudget/rabbitmq: ok: pruned"),
        "{out}"
    );
    assert!(
        budgets.get_opt("rabbitmq").await.unwrap().is_none(),
        "the budget must be pruned"
    );
    let after = versions(&client, ns).await;
    assert!(
        after == before,
        "nothing else may go or change: {:#?}",
        changed(&before, &after)
    );
}

#[test]
fn a_malformed_kubeconfig_is_a_usage_error_naming_the_file() {
    let project = Project::new("deploy", STUDENT, |_, text| text);
    let cases = [
        (
            "garbled-kubeconfig",
            "apiVersion: v1\nclusters: [{name: x, cluster: {server: \n",
            "cannot be read",
        ),
        (
            "dangling-kubeconfig",
            "apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts:\n- name: c\n  context: {cluster: nowhere, user: nobody}\ncurrent-context: c\n",
            "cannot be used",
        ),
    ];
    for (file, contents, expected) in cases {
        let path = project.path().join(file);
        std::fs::write(&path, contents).unwrap();
        let path = path.to_str().unwrap();
        for args in [
            vec!["plan", "--kubeconfig", path],
            vec![
                "deploy",
                "--skip-build",
                "--skip-push",
                "--kubeconfig",
                path,
            ],
        ] {
            let output = project.run(&args);
            let out = text(&output);
            assert_eq!(output.status.code(), Some(2), "{args:?}: {out}");
            assert!(
                out.contains(file) && out.contains(expected),
                "{args:?}: {out}"
            );
            assert!(!out.contains("did not answer"), "{args:?}: {out}");
        }
    }
}

#[test]
fn no_kubeconfig_at_all_says_to_create_the_cluster_first() {
    // HOME is the project (no ~/.kube/config) and KUBECONFIG is unset.
    let project = Project::new("deploy", STUDENT, |_, text| text);
    for args in [vec!["plan"], vec!["deploy", "--skip-build", "--skip-push"]] {
        let output = project.run(&args);
        let out = text(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {out}");
        assert!(
            out.contains("no kubeconfig")
                && out.contains("run `orchestrator create` first, or pass --kubeconfig"),
            "{args:?}: {out}"
        );
    }
}

/// Runs kubectl with `args` on `kubeconfig`, which must succeed; its stdout.
fn kubectl(kubeconfig: &str, args: &[&str]) -> String {
    let output = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        text(&output)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
async fn a_forbidden_request_names_the_verb_the_resource_and_the_rbac_fix() {
    let kubeconfig = kube_sim();
    let project = Project::new("deploy", STUDENT, |_, text| text);
    let ns = &project.namespace.name;
    // A ServiceAccount without any RBAC right, and a kubeconfig with its token.
    kubectl(&kubeconfig, &["create", "namespace", ns]);
    kubectl(
        &kubeconfig,
        &["-n", ns, "create", "serviceaccount", "nobody"],
    );
    let token = kubectl(&kubeconfig, &["-n", ns, "create", "token", "nobody"]);
    let limited = project.path().join("nobody-kubeconfig");
    std::fs::copy(&kubeconfig, &limited).unwrap();
    let limited = limited.to_str().unwrap();
    kubectl(
        limited,
        &[
            "config",
            "set-credentials",
            "nobody",
            "--token",
            token.trim(),
        ],
    );
    kubectl(
        limited,
        &["config", "set-context", "--current", "--user", "nobody"],
    );

    for args in [
        vec!["plan", "--kubeconfig", limited],
        vec![
            "deploy",
            "--skip-build",
            "--skip-push",
            "--platform",
            "linux/amd64",
            "--kubeconfig",
            limited,
        ],
    ] {
        let output = project.run(&args);
        let out = text(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {out}");
        for phrase in [
            format!("cannot get Namespace/{ns}"),
            "forbidden".to_string(),
            "lacks the RBAC right to get namespaces cluster-wide".to_string(),
            "kubectl auth can-i get namespaces".to_string(),
        ] {
            assert!(
                out.contains(&phrase),
                "{args:?}: {phrase:?} missing from:\n{out}"
            );
        }
    }
}

#[tokio::test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
async fn an_invalid_field_is_refused_naming_the_object_and_the_field() {
    let kubeconfig = kube_sim();
    // A valid number locally; the API server allows ports 1 to 65535.
    let project = Project::new(
        "deploy",
        STUDENT,
        in_file("inventory-db.yaml", |text| {
            replaced(
                &text,
                "      port: 5432\n      targetPort: 5432\n",
                "      port: 70000\n      targetPort: 5432\n",
            )
        }),
    );
    let output = project.deploy(&kubeconfig, &[]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    for phrase in [
        "Service/inventory-db (inventory-db.yaml) was refused by the API server (422 Invalid)",
        "spec.ports[0].port: Invalid value: 70000",
        "65535",
    ] {
        assert!(out.contains(phrase), "{phrase:?} missing from:\n{out}");
    }
    let client = client(&kubeconfig).await;
    let services = Api::<Service>::namespaced(client, &project.namespace.name);
    assert!(services.get_opt("inventory-db").await.unwrap().is_none());
}

#[tokio::test]
#[ignore = "needs kube-sim: set KUBE_SIM_KUBECONFIG"]
async fn with_dashboard_adds_a_read_only_headlamp_and_a_deploy_without_it_removes_it() {
    let kubeconfig = kube_sim();
    let project = Project::new("deploy", STUDENT, |_, text| text);
    let namespace = project.namespace.name.clone();
    let out = project.deployed(&kubeconfig, &["--with", "dashboard"]);
    assert!(
        out.contains(&format!(
            "`kubectl -n {namespace} port-forward svc/dashboard 8080:80`"
        )) && out.contains(&format!("`kubectl -n {namespace} create token dashboard`")),
        "{out}"
    );
    let client = client(&kubeconfig).await;
    let dashboard = Api::<Deployment>::namespaced(client.clone(), &namespace)
        .get("dashboard")
        .await
        .unwrap();
    let pod = dashboard.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("dashboard"));
    let binding = Api::<RoleBinding>::namespaced(client.clone(), &namespace)
        .get("dashboard-view")
        .await
        .unwrap();
    assert_eq!(
        (
            binding.role_ref.kind.as_str(),
            binding.role_ref.name.as_str()
        ),
        ("ClusterRole", "view"),
        "read-only"
    );
    let service = Api::<Service>::namespaced(client.clone(), &namespace)
        .get("dashboard")
        .await
        .unwrap();
    assert_eq!(service.spec.unwrap().type_.as_deref(), Some("ClusterIP"));

    let out = project.deployed(&kubeconfig, &[]);
    assert!(!out.contains("port-forward svc/dashboard"), "{out}");
    let gone = Api::<Deployment>::namespaced(client.clone(), &namespace)
        .get_opt("dashboard")
        .await
        .unwrap();
    assert!(gone.is_none(), "the dashboard is pruned: {out}");
    let binding = Api::<RoleBinding>::namespaced(client, &namespace)
        .get_opt("dashboard-view")
        .await
        .unwrap();
    assert!(binding.is_none(), "its rights go with it: {out}");
}
