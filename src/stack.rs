//! The stack: its components (the one list every command uses), and the
//! deployed stack as `status`, `deploy` and `verify` see it: workloads'
//! ready/desired replicas, autoscalers' state, and the gateway's URL.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};
use serde::Serialize;

use crate::error::Failure;

/// The six components of the stack, as DESIGN.md and the exercise define them:
/// the one list that `logs`, `verify`, `status`, the help and the completions use.
#[derive(Debug, Clone, Copy)]
pub struct Component {
    pub name: &'static str,
    pub kind: &'static str,
    pub port: i32,
    /// Keeps its data on a volume of its own (volumeClaimTemplates).
    pub storage: bool,
    /// Has a HorizontalPodAutoscaler.
    pub autoscaled: bool,
}

/// The component the audit reaches the stack through (a LoadBalancer Service).
pub const GATEWAY: &str = "api-gateway";
/// The component that consumes the orders queue (verify stops it to queue one).
pub const BILLING: &str = "billing-app";

pub const COMPONENTS: [Component; 6] = [
    Component {
        name: "inventory-db",
        kind: "StatefulSet",
        port: 5432,
        storage: true,
        autoscaled: false,
    },
    Component {
        name: "billing-db",
        kind: "StatefulSet",
        port: 5432,
        storage: true,
        autoscaled: false,
    },
    Component {
        name: "rabbitmq",
        kind: "StatefulSet",
        port: 5672,
        storage: true,
        autoscaled: false,
    },
    Component {
        name: "inventory-app",
        kind: "Deployment",
        port: 8080,
        storage: false,
        autoscaled: true,
    },
    Component {
        name: BILLING,
        kind: "StatefulSet",
        port: 8080,
        storage: false,
        autoscaled: true,
    },
    Component {
        name: GATEWAY,
        kind: "Deployment",
        port: 3000,
        storage: false,
        autoscaled: true,
    },
];

/// The component called `name`; anything else is a usage error naming them all.
pub fn component(name: &str) -> Result<&'static Component, Failure> {
    COMPONENTS.iter().find(|c| c.name == name).ok_or_else(|| {
        let names: Vec<&str> = COMPONENTS.iter().map(|c| c.name).collect();
        Failure::Usage(format!("no app {name}: the apps are {}", names.join(", ")))
    })
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Workload {
    pub kind: String,
    pub name: String,
    pub ready: i32,
    pub desired: i32,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Autoscaler {
    pub name: String,
    pub target: String,
    pub min: i32,
    pub max: i32,
    pub replicas: i32,
    /// Percent of requested CPU; absent while no metrics are served.
    pub cpu_now: Option<i32>,
    pub cpu_target: Option<i32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stack {
    pub namespace: String,
    /// The stack's components first, in [`COMPONENTS`] order, then any other workload.
    pub workloads: Vec<Workload>,
    /// Components of the stack with no workload in the namespace.
    pub missing: Vec<&'static str>,
    pub autoscalers: Vec<Autoscaler>,
    pub gateway: Option<String>,
}

/// The stack of `namespace` as the API server has it now.
pub async fn status(client: &kube::Client, namespace: &str) -> anyhow::Result<Stack> {
    let list = ListParams::default();
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace);
    let stateful_sets = Api::<StatefulSet>::namespaced(client.clone(), namespace);
    let autoscalers = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), namespace);
    let services = Api::<Service>::namespaced(client.clone(), namespace);
    let (deployments, stateful_sets, autoscalers, services) = tokio::try_join!(
        deployments.list(&list),
        stateful_sets.list(&list),
        autoscalers.list(&list),
        services.list(&list),
    )?;
    Ok(Stack::of(
        namespace,
        &deployments.items,
        &stateful_sets.items,
        &autoscalers.items,
        &services.items,
    ))
}

impl Stack {
    /// The stack these objects of `namespace` make (a list's, or the
    /// dashboard's reflector stores'), in any order.
    pub fn of<'a>(
        namespace: &str,
        deployments: impl IntoIterator<Item = &'a Deployment>,
        stateful_sets: impl IntoIterator<Item = &'a StatefulSet>,
        autoscalers: impl IntoIterator<Item = &'a HorizontalPodAutoscaler>,
        services: impl IntoIterator<Item = &'a Service>,
    ) -> Stack {
        let workload = |kind: &str,
                        name: &Option<String>,
                        ready: Option<i32>,
                        desired: Option<i32>| Workload {
            kind: kind.into(),
            name: name.clone().unwrap_or_default(),
            ready: ready.unwrap_or(0),
            desired: desired.unwrap_or(1),
        };
        let deployments = deployments.into_iter().map(|d| {
            let ready = d.status.as_ref().and_then(|s| s.ready_replicas);
            let desired = d.spec.as_ref().and_then(|s| s.replicas);
            workload("Deployment", &d.metadata.name, ready, desired)
        });
        let stateful_sets = stateful_sets.into_iter().map(|s| {
            let ready = s.status.as_ref().and_then(|s| s.ready_replicas);
            let desired = s.spec.as_ref().and_then(|s| s.replicas);
            workload("StatefulSet", &s.metadata.name, ready, desired)
        });
        let mut workloads: Vec<Workload> = deployments.chain(stateful_sets).collect();
        workloads.sort_by_key(|w| (position(&w.name), w.name.clone()));
        let mut autoscalers: Vec<Autoscaler> = autoscalers.into_iter().map(autoscaler).collect();
        autoscalers.sort_by(|a, b| a.name.cmp(&b.name)); // as the API server lists them
        Stack {
            namespace: namespace.into(),
            missing: missing(&workloads),
            workloads,
            autoscalers,
            gateway: services.into_iter().find_map(load_balancer_url),
        }
    }
}

fn autoscaler(hpa: &HorizontalPodAutoscaler) -> Autoscaler {
    let spec = hpa.spec.as_ref();
    let status = hpa.status.as_ref();
    Autoscaler {
        name: hpa.metadata.name.clone().unwrap_or_default(),
        target: spec
            .map(|s| format!("{}/{}", s.scale_target_ref.kind, s.scale_target_ref.name))
            .unwrap_or_default(),
        min: spec.and_then(|s| s.min_replicas).unwrap_or(1),
        max: spec.map_or(0, |s| s.max_replicas),
        replicas: status.map_or(0, |s| s.current_replicas),
        cpu_now: status.and_then(|s| s.current_cpu_utilization_percentage),
        cpu_target: spec.and_then(|s| s.target_cpu_utilization_percentage),
    }
}

/// Where a workload comes in [`COMPONENTS`]; others after them.
fn position(name: &str) -> usize {
    COMPONENTS
        .iter()
        .position(|c| c.name == name)
        .unwrap_or(COMPONENTS.len())
}

/// The components with no workload among `workloads`.
fn missing(workloads: &[Workload]) -> Vec<&'static str> {
    COMPONENTS
        .iter()
        .filter(|c| !workloads.iter().any(|w| w.name == c.name))
        .map(|c| c.name)
        .collect()
}

/// `http://ADDRESS:PORT` of the namespace's LoadBalancer Service, once it has an address.
pub async fn gateway_url(client: &kube::Client, namespace: &str) -> kube::Result<Option<String>> {
    let services = Api::<Service>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?;
    Ok(services.items.iter().find_map(load_balancer_url))
}

pub fn load_balancer_url(service: &Service) -> Option<String> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return None;
    }
    let port = spec.ports.as_ref()?.first()?.port;
    let ingress = service
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?;
    let address = ingress.ip.as_ref().or(ingress.hostname.as_ref())?;
    Some(format!("http://{address}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects<K: serde::de::DeserializeOwned>(yaml: &[&str]) -> Vec<K> {
        yaml.iter()
            .map(|y| serde_yaml_ng::from_str(y).unwrap())
            .collect()
    }

    #[test]
    fn the_stack_comes_in_component_order_whatever_order_its_objects_come_in() {
        let deployments: Vec<Deployment> = objects(&[
            "metadata: {name: extra}",
            "metadata: {name: api-gateway}\nspec: {replicas: 2, selector: {}, template: {}}\nstatus: {readyReplicas: 1}",
        ]);
        let stateful_sets: Vec<StatefulSet> = objects(&["metadata: {name: inventory-db}"]);
        let autoscalers: Vec<HorizontalPodAutoscaler> = objects(&[
            "metadata: {name: inventory-app}\nspec: {maxReplicas: 3, scaleTargetRef: {kind: Deployment, name: inventory-app}}",
            "metadata: {name: api-gateway}\nspec: {minReplicas: 1, maxReplicas: 3, targetCPUUtilizationPercentage: 60, scaleTargetRef: {kind: Deployment, name: api-gateway}}\nstatus: {currentReplicas: 2, desiredReplicas: 2}",
        ]);
        let services: Vec<Service> = objects(&[
            "metadata: {name: rabbitmq}\nspec: {type: ClusterIP, ports: [{port: 5672}]}",
            "metadata: {name: api-gateway}\nspec: {type: LoadBalancer, ports: [{port: 3000}]}\nstatus: {loadBalancer: {ingress: [{ip: 10.0.0.10}]}}",
        ]);
        let stack = Stack::of(
            "stack",
            &deployments,
            &stateful_sets,
            &autoscalers,
            &services,
        );
        let names: Vec<&str> = stack.workloads.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["inventory-db", "api-gateway", "extra"]);
        assert_eq!(
            stack.workloads[1],
            Workload {
                kind: "Deployment".into(),
                name: "api-gateway".into(),
                ready: 1,
                desired: 2,
            }
        );
        assert_eq!(
            stack.missing,
            ["billing-db", "rabbitmq", "inventory-app", "billing-app"]
        );
        let names: Vec<&str> = stack.autoscalers.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["api-gateway", "inventory-app"]);
        assert_eq!(stack.autoscalers[0].target, "Deployment/api-gateway");
        assert_eq!(
            (
                stack.autoscalers[0].replicas,
                stack.autoscalers[0].cpu_target
            ),
            (2, Some(60))
        );
        assert_eq!(stack.gateway.as_deref(), Some("http://10.0.0.10:3000"));
    }

    #[test]
    fn an_unknown_component_is_a_usage_error_naming_them_all() {
        assert_eq!(component("rabbitmq").unwrap().port, 5672);
        let err = component("nosuch").unwrap_err().to_string();
        assert!(
            err.contains("no app nosuch: the apps are inventory-db, billing-db, rabbitmq"),
            "{err}"
        );
    }

    #[test]
    fn url_needs_a_load_balancer_with_an_address() {
        let with: Service = serde_yaml_ng::from_str(
            "spec: {type: LoadBalancer, ports: [{port: 3000}]}\nstatus: {loadBalancer: {ingress: [{ip: 10.0.0.10}]}}",
        )
        .unwrap();
        assert_eq!(
            load_balancer_url(&with).as_deref(),
            Some("http://10.0.0.10:3000")
        );
        let pending: Service = serde_yaml_ng::from_str(
            "spec: {type: LoadBalancer, ports: [{port: 3000}]}\nstatus: {loadBalancer: {}}",
        )
        .unwrap();
        assert_eq!(load_balancer_url(&pending), None);
        let cluster_ip: Service =
            serde_yaml_ng::from_str("spec: {type: ClusterIP, ports: [{port: 80}]}").unwrap();
        assert_eq!(load_balancer_url(&cluster_ip), None);
    }
}
