//! Credentials: only in Secrets, and every Secret key the workloads read exists.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Files, Live, Verdict, array, place, text};
use crate::deploy::manifest::Manifest;
use crate::deploy::secrets;

/// No credential by value in the manifest files.
pub(super) fn credentials_in_files(input: &Files) -> Verdict {
    let files = input.manifests;
    Verdict::judged(
        secret_references(files),
        credential_leaks(files),
        "read credentials with valueFrom.secretKeyRef (deploy creates the Secrets from .env) and deploy again",
    )
}

/// The live workloads read their credentials from Secrets that hold them all.
pub(super) fn live_credentials(live: &Live) -> Verdict {
    let (objects, namespace) = (live.objects, live.namespace);
    let workloads: Vec<Manifest> = objects
        .iter()
        .filter(|m| m.is_workload())
        .cloned()
        .collect();
    let mut evidence = secret_references(objects);
    let mut problems = credential_leaks(objects);
    for (secret, keys) in secrets::required(&workloads) {
        let held: BTreeSet<&str> = objects
            .iter()
            .find(|m| m.kind == "Secret" && m.name == secret)
            .map(|m| {
                ["data", "stringData"]
                    .iter()
                    .filter_map(|field| m.body.get(field).and_then(Value::as_object))
                    .flat_map(|map| map.keys().map(String::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let missing: Vec<&str> = keys
            .iter()
            .map(String::as_str)
            .filter(|k| !held.contains(k))
            .collect();
        match (held.is_empty(), missing.is_empty()) {
            (_, true) => evidence.push(format!(
                "Secret/{secret} holds {}",
                keys.iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            (true, false) => problems.push(format!("Secret/{secret} does not exist (or is empty)")),
            (false, false) => {
                problems.push(format!("Secret/{secret} lacks {}", missing.join(", ")))
            }
        }
    }
    Verdict::judged(
        evidence,
        problems,
        &format!(
            "read credentials with valueFrom.secretKeyRef and run `orchestrator deploy` (it creates the Secrets); \
             `kubectl -n {namespace} get secrets -o json` shows them"
        ),
    )
}

/// Whether a variable or key name says it holds a credential.
pub(super) fn is_credential_name(name: &str) -> bool {
    const WORDS: &[&str] = &[
        "PASSWORD", "PASS", "PASSWD", "PWD", "TOKEN", "SECRET", "USER", "USERNAME", "APIKEY",
    ];
    let upper = name.to_ascii_uppercase();
    let words: Vec<&str> = upper.split(['_', '-', '.']).collect();
    words.iter().any(|w| WORDS.contains(w))
        || words
            .windows(2)
            .any(|pair| pair[1] == "KEY" && ["API", "ACCESS", "PRIVATE"].contains(&pair[0]))
}

/// Credentials held by value outside Secrets: literal or ConfigMap-sourced
/// env values with a credential's name, credential keys in ConfigMaps,
/// credentials on command lines, and any value that contains a password one
/// of the Secrets among `objects` holds (whatever the name around it).
fn credential_leaks(objects: &[Manifest]) -> Vec<String> {
    let mut leaks = Vec::new();
    let passwords = secret_passwords(objects);
    for m in objects.iter().filter(|m| m.kind != "Secret") {
        let mut values = Vec::new();
        strings(&m.body, &mut values);
        for (source, password) in &passwords {
            if values.iter().any(|v| v.contains(password.as_str())) {
                leaks.push(format!(
                    "{}: a value contains the password of {source}",
                    place(m)
                ));
            }
        }
        if m.kind == "ConfigMap" {
            for field in ["data", "binaryData"] {
                let keys = m
                    .body
                    .get(field)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flat_map(|map| map.keys());
                leaks.extend(
                    keys.filter(|k| is_credential_name(k)).map(|k| {
                        format!("{}: key {k} holds a credential outside a Secret", place(m))
                    }),
                );
            }
        }
        for container in m.containers() {
            let at = format!("{} container {}", place(m), text(container, "/name"));
            for env in array(container, "/env") {
                let name = text(env, "/name");
                if !is_credential_name(name) {
                    continue;
                }
                if env.get("value").is_some_and(|v| v.as_str() != Some("")) {
                    leaks.push(format!("{at}: env {name} is a literal value"));
                } else if let Some(map) = env.pointer("/valueFrom/configMapKeyRef") {
                    leaks.push(format!(
                        "{at}: env {name} comes from ConfigMap {}, not a Secret",
                        text(map, "/name")
                    ));
                }
            }
            let flags = ["command", "args"]
                .into_iter()
                .flat_map(|field| array(container, &format!("/{field}")));
            for flag in flags.filter_map(Value::as_str) {
                let lower = flag.to_ascii_lowercase();
                if ["password=", "passwd=", "token=", "secret="]
                    .iter()
                    .any(|p| lower.contains(p))
                {
                    leaks.push(format!(
                        "{at}: a command-line argument carries a credential"
                    ));
                }
            }
        }
    }
    leaks
}

/// The passwords (not user names) the Secrets among `objects` hold, each
/// with `Secret/NAME key KEY`; too short a value would match by chance.
fn secret_passwords(objects: &[Manifest]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for m in objects.iter().filter(|m| m.kind == "Secret") {
        let Ok(secret) =
            serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(m.body.clone())
        else {
            continue;
        };
        let decoded = secret
            .data
            .into_iter()
            .flatten()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()));
        for (key, value) in decoded.chain(secret.string_data.into_iter().flatten()) {
            let is_user = key
                .to_ascii_uppercase()
                .split(['_', '-', '.'])
                .any(|w| w == "USER" || w == "USERNAME");
            if is_credential_name(&key) && !is_user && value.len() >= 6 {
                found.push((format!("{} key {key}", m.key()), value));
            }
        }
    }
    found
}

/// Every string in a value, but the server's bookkeeping (managedFields).
fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| *k != "managedFields")
            .for_each(|(_, v)| strings(v, out)),
        _ => {}
    }
}

/// Evidence: which Secret keys each workload reads.
fn secret_references(objects: &[Manifest]) -> Vec<String> {
    objects
        .iter()
        .filter(|m| m.is_workload())
        .filter_map(|m| {
            let refs: Vec<String> = m
                .containers()
                .into_iter()
                .flat_map(|c| array(c, "/env"))
                .filter_map(|env| {
                    let secret = env.pointer("/valueFrom/secretKeyRef")?;
                    Some(format!(
                        "{} <- {}/{}",
                        text(env, "/name"),
                        text(secret, "/name"),
                        text(secret, "/key")
                    ))
                })
                .collect();
            (!refs.is_empty()).then(|| format!("{}: {}", place(m), refs.join(", ")))
        })
        .collect()
}
