//! `kubectl apply -k manifests`, as manifests/kustomization.yaml and the
//! README describe it: the images named through kustomize `images:`, the
//! Secrets made by a `secretGenerator` from gitignored env files, with the
//! names and keys `orchestrator deploy` would create; applied for real on
//! kube-sim, in a namespace of the test's own, and rolled out.
//!
//! `#[ignore]`d: needs kubectl, and kube-sim for the apply
//! (`KUBE_SIM_KUBECONFIG`, see tests/support/kube_sim.rs).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use orchestrator::deploy::{manifest, secrets};
use serde_json::Value;
use support::kube_sim::{TestNamespace, kubeconfig};

fn manifests_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/manifests"))
}

fn kubectl(args: &[&str]) -> Output {
    Command::new("kubectl")
        .args(args)
        .output()
        .expect("kubectl runs")
}

fn stdout_of(args: &[&str]) -> String {
    let out = kubectl(args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Secret name → keys that the manifests read (what deploy creates).
fn required() -> BTreeMap<String, BTreeSet<String>> {
    secrets::required(&manifest::load(manifests_dir()).unwrap())
}

/// A copy of manifests/ (without any secrets/ of the developer's) under `root`.
fn copy_manifests(root: &Path) -> std::path::PathBuf {
    let base = root.join("manifests");
    std::fs::create_dir_all(&base).unwrap();
    for entry in std::fs::read_dir(manifests_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, base.join(path.file_name().unwrap())).unwrap();
        }
    }
    base
}

/// The env files the kustomization's secretGenerator reads, as a user writes
/// them (README): one per Secret, with every key the manifests read.
fn write_env_files(base: &Path, passwords: &str) {
    let dir = base.join("secrets");
    std::fs::create_dir_all(&dir).unwrap();
    for (secret, keys) in required() {
        let file = format!("{}.env", secret.trim_end_matches("-secret"));
        let text: String = keys
            .iter()
            .map(|key| {
                let value = match key.strip_suffix("_USER") {
                    Some(prefix) => prefix.trim_end_matches("_DB").to_ascii_lowercase(),
                    None => format!("{passwords}-{}", key.to_ascii_lowercase()),
                };
                format!("{key}={value}\n")
            })
            .collect();
        std::fs::write(dir.join(file), text).unwrap();
    }
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| {
            let value: serde_yaml_ng::Value = serde::Deserialize::deserialize(doc).unwrap();
            serde_json::to_value(value).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn images(objects: &[Value]) -> BTreeSet<String> {
    objects
        .iter()
        .filter_map(|o| o.pointer("/spec/template/spec/containers"))
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|c| c["image"].as_str().map(String::from))
        .collect()
}

#[test]
#[ignore = "needs kubectl"]
fn kustomize_makes_the_secrets_deploy_makes_and_renames_the_images() {
    let root = tempfile::tempdir().unwrap();
    let base = copy_manifests(root.path());

    // Without the env files kustomize stops, naming the missing one.
    let out = kubectl(&["kustomize", base.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("secrets/"), "{err}");

    write_env_files(&base, "pw-0123456789");
    let objects = documents(&stdout_of(&["kustomize", base.to_str().unwrap()]));

    // The Secrets deploy would create: the same names, exactly the same keys,
    // no hash suffix (the secretKeyRefs name them as they are).
    let made: BTreeMap<String, BTreeSet<String>> = objects
        .iter()
        .filter(|o| o["kind"] == "Secret")
        .map(|o| {
            let keys = o["data"].as_object().unwrap().keys().cloned().collect();
            (o["metadata"]["name"].as_str().unwrap().to_string(), keys)
        })
        .collect();
    assert_eq!(made, required());
    for secret in objects.iter().filter(|o| o["kind"] == "Secret") {
        assert_eq!(secret["metadata"]["namespace"], "orchestrator");
        assert_eq!(
            secret["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "orchestrator"
        );
    }
    // No credential anywhere but in the Secrets.
    for other in objects.iter().filter(|o| o["kind"] != "Secret") {
        assert!(
            !other.to_string().contains("pw-0123456789"),
            "a password outside a Secret: {other}"
        );
    }

    // Every image through `images:`: none left bare.
    let expected: BTreeSet<String> = [
        "api-gateway",
        "billing-app",
        "inventory-app",
        "postgres",
        "rabbitmq",
    ]
    .iter()
    .map(|name| format!("docker.io/your-dockerhub-user/{name}:1.0.0"))
    .collect();
    assert_eq!(images(&objects), expected);
}

#[test]
#[ignore = "needs kube-sim (KUBE_SIM_KUBECONFIG)"]
fn apply_k_deploys_the_stack_on_kube_sim() {
    let kubeconfig = kubeconfig();
    let namespace = TestNamespace::new("kustomize", &kubeconfig);
    let root = tempfile::tempdir().unwrap();
    let base = copy_manifests(root.path());
    write_env_files(&base, "pw-9876543210");
    // The same kustomization in the test's namespace: an overlay, as a user
    // would write one; kustomize renames the Namespace object too.
    let overlay = root.path().join("overlay");
    std::fs::create_dir_all(&overlay).unwrap();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             namespace: {}\nresources:\n  - ../manifests\n",
            namespace.name
        ),
    )
    .unwrap();

    let k = ["--kubeconfig", kubeconfig.as_str()];
    let ns = ["-n", namespace.name.as_str()];
    let applied = stdout_of(&[&k[..], &["apply", "-k", overlay.to_str().unwrap()]].concat());
    assert!(
        applied.contains(&format!("namespace/{} created", namespace.name)),
        "{applied}"
    );

    // The Secrets hold what the workloads read.
    for (secret, keys) in required() {
        let json =
            stdout_of(&[&k[..], &ns[..], &["get", "secret", &secret, "-o", "json"]].concat());
        let object: Value = serde_json::from_str(&json).unwrap();
        let held: BTreeSet<String> = object["data"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(held, keys, "Secret/{secret}");
    }
    // Every workload rolls out (kube-sim's kubelet makes the pods Ready).
    for workload in [
        "statefulset/inventory-db",
        "statefulset/billing-db",
        "statefulset/rabbitmq",
        "deployment/inventory-app",
        "statefulset/billing-app",
        "deployment/api-gateway",
    ] {
        stdout_of(
            &[
                &k[..],
                &ns[..],
                &["rollout", "status", workload, "--timeout=180s"],
            ]
            .concat(),
        );
    }
    let pods = stdout_of(
        &[
            &k[..],
            &ns[..],
            &[
                "get",
                "pods",
                "-o",
                "jsonpath={range .items[*]}{.spec.containers[0].image}{\"\\n\"}{end}",
            ],
        ]
        .concat(),
    );
    assert!(
        pods.lines()
            .all(|image| image.starts_with("docker.io/your-dockerhub-user/")),
        "{pods}"
    );
    // Applying again changes nothing that matters and fails nothing.
    stdout_of(&[&k[..], &["apply", "-k", overlay.to_str().unwrap()]].concat());
}
