//! The workloads: their kinds, volumes, autoscalers and ports.

use serde_json::Value;

use super::{Live, Verdict, array, text, workload};
use crate::stack::COMPONENTS;

/// The autoscaling rule of the exercise.
const MIN_REPLICAS: i64 = 1;
const MAX_REPLICAS: i64 = 3;
const CPU_PERCENT: i64 = 60;

pub(super) fn kinds(live: &Live) -> Verdict {
    let (objects, fix) = (live.objects, live.fix());
    let mut evidence = Vec::new();
    let mut problems = Vec::new();
    for component in COMPONENTS {
        match workload(objects, &component) {
            Some(m) if m.kind == component.kind => {
                evidence.push(format!("{}: kind {}", m.key(), m.kind))
            }
            Some(m) => problems.push(format!(
                "{} is a {}; the exercise wants a {}",
                component.name, m.kind, component.kind
            )),
            None => problems.push(format!(
                "no Deployment or StatefulSet named {}",
                component.name
            )),
        }
    }
    Verdict::judged(evidence, problems, &fix)
}

pub(super) fn volumes(live: &Live) -> Verdict {
    let (objects, fix) = (live.objects, live.fix());
    let mut evidence = Vec::new();
    let mut problems = Vec::new();
    for component in COMPONENTS.iter().filter(|c| c.storage) {
        let Some(m) = workload(objects, component) else {
            problems.push(format!("no workload named {}", component.name));
            continue;
        };
        let templates = array(&m.body, "/spec/volumeClaimTemplates");
        if templates.is_empty() {
            problems.push(format!(
                "{} has no volumeClaimTemplates: its data dies with its pod",
                m.key()
            ));
            continue;
        }
        let mounts: Vec<&Value> = m
            .containers()
            .iter()
            .flat_map(|c| array(c, "/volumeMounts"))
            .collect();
        for template in templates {
            let name = text(template, "/metadata/name");
            let size = text(template, "/spec/resources/requests/storage");
            let modes: Vec<&str> = array(template, "/spec/accessModes")
                .iter()
                .filter_map(|v| v.as_str())
                .collect();
            match mounts.iter().find(|v| text(v, "/name") == name) {
                Some(mount) => evidence.push(format!(
                    "{}: volumeClaimTemplates {name} ({size}, {}) mounted at {}",
                    m.key(),
                    modes.join(","),
                    text(mount, "/mountPath")
                )),
                None => problems.push(format!(
                    "{}: the claim {name} is mounted by no container",
                    m.key()
                )),
            }
        }
    }
    Verdict::judged(evidence, problems, &fix)
}

pub(super) fn autoscalers(live: &Live) -> Verdict {
    let (objects, fix) = (live.objects, live.fix());
    let mut evidence = Vec::new();
    let mut problems = Vec::new();
    for component in COMPONENTS.iter().filter(|c| c.autoscaled) {
        let target = objects
            .iter()
            .filter(|m| m.kind == "HorizontalPodAutoscaler")
            .find(|m| text(&m.body, "/spec/scaleTargetRef/name") == component.name);
        let Some(hpa) = target else {
            problems.push(format!(
                "no HorizontalPodAutoscaler targets {}",
                component.name
            ));
            continue;
        };
        let spec = &hpa.body["spec"];
        let target_kind = text(spec, "/scaleTargetRef/kind");
        let min = spec
            .get("minReplicas")
            .and_then(Value::as_i64)
            .unwrap_or(MIN_REPLICAS);
        let max = spec.get("maxReplicas").and_then(Value::as_i64).unwrap_or(0);
        let cpu = cpu_target(spec);
        evidence.push(format!(
            "{} -> {target_kind}/{}: minReplicas {min}, maxReplicas {max}, CPU target {}",
            hpa.key(),
            component.name,
            cpu.map_or("none".into(), |c| format!("{c}%"))
        ));
        let mut wrong = Vec::new();
        if target_kind != component.kind {
            wrong.push(format!(
                "targets a {target_kind}, not the {}",
                component.kind
            ));
        }
        if min != MIN_REPLICAS {
            wrong.push(format!("minReplicas {min}, expected {MIN_REPLICAS}"));
        }
        if max != MAX_REPLICAS {
            wrong.push(format!("maxReplicas {max}, expected {MAX_REPLICAS}"));
        }
        if cpu != Some(CPU_PERCENT) {
            wrong.push(format!(
                "CPU target {}, expected {CPU_PERCENT}%",
                cpu.map_or("absent".into(), |c| format!("{c}%"))
            ));
        }
        if !wrong.is_empty() {
            problems.push(format!("{}: {}", hpa.key(), wrong.join("; ")));
        }
    }
    Verdict::judged(evidence, problems, &fix)
}

/// The CPU utilisation target: autoscaling/v1's field, or a v2 Resource metric.
fn cpu_target(spec: &Value) -> Option<i64> {
    spec.get("targetCPUUtilizationPercentage")
        .and_then(Value::as_i64)
        .or_else(|| {
            array(spec, "/metrics")
                .iter()
                .find(|m| text(m, "/resource/name") == "cpu")
                .and_then(|m| m.pointer("/resource/target/averageUtilization"))
                .and_then(Value::as_i64)
        })
}

pub(super) fn ports(live: &Live) -> Verdict {
    let (objects, fix) = (live.objects, live.fix());
    let mut evidence = Vec::new();
    let mut problems = Vec::new();
    for component in COMPONENTS {
        let port = i64::from(component.port);
        let container_port = workload(objects, &component).and_then(|m| {
            m.containers().into_iter().find_map(|c| {
                array(c, "/ports")
                    .iter()
                    .any(|p| p.get("containerPort").and_then(Value::as_i64) == Some(port))
                    .then(|| text(c, "/name").to_string())
            })
        });
        let service = objects
            .iter()
            .find(|m| m.kind == "Service" && m.name == component.name);
        let service_port = service.filter(|s| {
            array(&s.body, "/spec/ports")
                .iter()
                .any(|p| p.get("port").and_then(Value::as_i64) == Some(port))
        });
        match (service_port, &container_port) {
            (Some(service), Some(container)) => {
                let kind = text(&service.body, "/spec/type");
                let kind = if kind.is_empty() { "ClusterIP" } else { kind };
                evidence.push(format!(
                    "{}: type {kind}, port {port} -> container {container} port {port}",
                    service.key()
                ));
                if component.name == crate::stack::GATEWAY && kind != "LoadBalancer" {
                    problems.push(format!(
                        "{} is of type {kind}; the gateway must be a LoadBalancer",
                        service.key()
                    ));
                }
            }
            (None, _) if service.is_none() => {
                problems.push(format!("no Service named {}", component.name))
            }
            (None, _) => problems.push(format!(
                "Service/{} does not expose port {port}",
                component.name
            )),
            (_, None) => problems.push(format!(
                "no container of {} declares containerPort {port}",
                component.name
            )),
        }
    }
    Verdict::judged(evidence, problems, &fix)
}
