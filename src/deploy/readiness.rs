//! Readiness as pure functions of an object, the rules of `kubectl rollout
//! status`, and the pod states that will not get better by waiting, explained
//! in words a student can act on.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not yet, and why ("1/2 ready").
    Waiting(String),
    /// It will not become ready: stop and say why.
    Failed(String),
}

pub fn deployment(d: &Deployment) -> Readiness {
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(status) = &d.status else {
        return Readiness::Waiting("no status yet".into());
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return Readiness::Waiting("waiting for the controller to see the new spec".into());
    }
    let deadline_exceeded = status.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if deadline_exceeded {
        return Readiness::Failed("its rollout exceeded its progress deadline".into());
    }
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired {
        return Readiness::Waiting(format!("{updated}/{desired} updated"));
    }
    if total > updated {
        return Readiness::Waiting(format!("{} old replica(s) terminating", total - updated));
    }
    if available < updated {
        return Readiness::Waiting(format!("{available}/{desired} ready"));
    }
    Readiness::Ready
}

pub fn stateful_set(s: &StatefulSet) -> Readiness {
    let generation = s.metadata.generation.unwrap_or(0);
    let Some(status) = &s.status else {
        return Readiness::Waiting("no status yet".into());
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return Readiness::Waiting("waiting for the controller to see the new spec".into());
    }
    let desired = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    if ready < desired {
        return Readiness::Waiting(format!("{ready}/{desired} ready"));
    }
    let rolling = s
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate");
    if rolling
        && status.update_revision.is_some()
        && status.current_revision != status.update_revision
    {
        let updated = status.updated_replicas.unwrap_or(0);
        return Readiness::Waiting(format!("{updated}/{desired} updated to the new revision"));
    }
    Readiness::Ready
}

/// The annotation the Deployment controller keeps equal on a Deployment and its new ReplicaSet.
const DEPLOYMENT_REVISION: &str = "deployment.kubernetes.io/revision";

/// Which pods run a workload's current revision, told by a label its
/// controller puts on them: a Deployment's new ReplicaSet's `pod-template-hash`,
/// a StatefulSet's `updateRevision` in `controller-revision-hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    label: &'static str,
    value: String,
    /// False for a StatefulSet rolling out with OrderedReady: it never replaces
    /// a pod of an old revision that is not Ready (Kubernetes' documented
    /// "forced rollback" is to delete that pod).
    pub replaces_old_pods_itself: bool,
}

impl Revision {
    pub fn owns(&self, pod: &Pod) -> bool {
        pod.metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(self.label))
            == Some(&self.value)
    }

    pub fn of_replica_set(set: &ReplicaSet) -> Option<Revision> {
        let hash = set.metadata.labels.as_ref()?.get("pod-template-hash")?;
        Some(Revision {
            label: "pod-template-hash",
            value: hash.clone(),
            replaces_old_pods_itself: true,
        })
    }
}

/// Whether the Deployment controller has seen the Deployment's current spec.
pub fn deployment_observed(d: &Deployment) -> bool {
    let observed = d.status.as_ref().and_then(|s| s.observed_generation);
    observed.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// The Deployment's new ReplicaSet among `sets`: owned by it, at its revision.
pub fn new_replica_set<'a>(d: &Deployment, sets: &'a [ReplicaSet]) -> Option<&'a ReplicaSet> {
    let uid = d.metadata.uid.as_ref()?;
    let revision = d.metadata.annotations.as_ref()?.get(DEPLOYMENT_REVISION)?;
    sets.iter().find(|set| {
        let owned = set
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|owner| &owner.uid == uid);
        let at_revision = set
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEPLOYMENT_REVISION))
            == Some(revision);
        owned && at_revision
    })
}

/// The StatefulSet's update revision, once its controller has seen its spec.
pub fn stateful_set_revision(s: &StatefulSet) -> Option<Revision> {
    let status = s.status.as_ref()?;
    if status.observed_generation.unwrap_or(0) < s.metadata.generation.unwrap_or(0) {
        return None;
    }
    let spec = s.spec.as_ref();
    let ordered = spec
        .and_then(|s| s.pod_management_policy.as_deref())
        .is_none_or(|p| p == "OrderedReady");
    let rolling = spec
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate");
    Some(Revision {
        label: "controller-revision-hash",
        value: status.update_revision.clone()?,
        replaces_old_pods_itself: !(ordered && rolling),
    })
}

/// Whether the pod's Ready condition is True.
pub fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// A pod state that waiting will not cure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodProblem {
    ImagePull {
        pod: String,
        image: String,
        reason: String,
        message: String,
    },
    CrashLoop {
        pod: String,
        container: String,
        restarts: i32,
    },
    Unschedulable {
        pod: String,
        message: String,
    },
}

pub fn pod_problem(pod: &Pod) -> Option<PodProblem> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref()?;
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for container in containers {
        let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        match waiting.reason.as_deref() {
            Some(
                reason @ ("ImagePullBackOff" | "ErrImagePull" | "InvalidImageName"
                | "ErrImageNeverPull"),
            ) => {
                return Some(PodProblem::ImagePull {
                    pod: name,
                    image: container.image.clone(),
                    reason: reason.into(),
                    message: waiting.message.clone().unwrap_or_default(),
                });
            }
            Some("CrashLoopBackOff") => {
                return Some(PodProblem::CrashLoop {
                    pod: name,
                    container: container.name.clone(),
                    restarts: container.restart_count,
                });
            }
            _ => {}
        }
    }
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    })?;
    Some(PodProblem::Unschedulable {
        pod: name,
        message: unschedulable.message.clone().unwrap_or_default(),
    })
}

impl PodProblem {
    /// Whether waiting cannot cure it. A pod that is unschedulable only while
    /// its volume binds, say, is not; one that needs more memory than any node has is.
    pub fn is_fatal(&self) -> bool {
        match self {
            PodProblem::Unschedulable { message, .. } => message.contains("Insufficient"),
            _ => true,
        }
    }

    pub fn pod(&self) -> &str {
        match self {
            PodProblem::ImagePull { pod, .. }
            | PodProblem::CrashLoop { pod, .. }
            | PodProblem::Unschedulable { pod, .. } => pod,
        }
    }

    /// What is wrong and what to do, for `workload` (e.g. "Deployment/api-gateway");
    /// `logs` are the crashed container's last lines, when they could be read.
    pub fn explain(&self, workload: &str, logs: Option<&str>) -> String {
        match self {
            PodProblem::ImagePull {
                pod,
                image,
                reason,
                message,
            } => {
                let detail = if message.is_empty() {
                    String::new()
                } else {
                    format!(" ({message})")
                };
                let fixes = super::images::never_pulled_fix(reason).unwrap_or(
                    "Likely fixes: the image was not pushed (run `orchestrator deploy` without --skip-push), \
                     the repository is private on Docker Hub (make it public or add an imagePullSecret), \
                     or registry.namespace / DOCKERHUB_USERNAME names the wrong account.",
                );
                format!(
                    "{workload}: pod {pod} cannot pull its image {image}: {reason}{detail}.\n  {fixes}"
                )
            }
            PodProblem::CrashLoop {
                pod,
                container,
                restarts,
            } => {
                let fixes = logs.and_then(super::images::exec_format_fix).unwrap_or_else(|| {
                    format!(
                        "Likely fixes: a wrong setting or credential in app-config or the Secrets, or a database that \
                         is not reachable; see `orchestrator logs {}`.",
                        workload.rsplit('/').next().unwrap_or(workload)
                    )
                });
                let logs = match logs {
                    Some(text) if !text.trim().is_empty() => text
                        .lines()
                        .map(|l| format!("\n  | {l}"))
                        .collect::<String>(),
                    _ => "\n  (its logs could not be read)".into(),
                };
                format!(
                    "{workload}: container {container} of pod {pod} keeps crashing (CrashLoopBackOff, {restarts} restart(s)).\n  \
                     Its last log lines:{logs}\n  {fixes}"
                )
            }
            PodProblem::Unschedulable { pod, message } => format!(
                "{workload}: pod {pod} cannot be scheduled on any node: {message}\n  \
                 Likely fixes: the VMs lack memory or CPU for the requests (raise cluster.memory_mb / cluster.cpus \
                 and recreate the cluster), or a node is not Ready (`orchestrator status`)."
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn deployment_rules_follow_rollout_status() {
        let fresh: Deployment = yaml(
            "metadata: {generation: 2}\nspec: {replicas: 2, selector: {}, template: {}}\nstatus: {observedGeneration: 1}",
        );
        assert!(matches!(deployment(&fresh), Readiness::Waiting(m) if m.contains("controller")));
        let half: Deployment = yaml(
            "metadata: {generation: 1}\nspec: {replicas: 2, selector: {}, template: {}}\nstatus: {observedGeneration: 1, replicas: 2, updatedReplicas: 2, availableReplicas: 1}",
        );
        assert_eq!(deployment(&half), Readiness::Waiting("1/2 ready".into()));
        let old: Deployment = yaml(
            "metadata: {generation: 1}\nspec: {replicas: 1, selector: {}, template: {}}\nstatus: {observedGeneration: 1, replicas: 2, updatedReplicas: 1, availableReplicas: 2}",
        );
        assert!(matches!(deployment(&old), Readiness::Waiting(m) if m.contains("terminating")));
        let done: Deployment = yaml(
            "metadata: {generation: 1}\nspec: {selector: {}, template: {}}\nstatus: {observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1}",
        );
        assert_eq!(deployment(&done), Readiness::Ready);
        let stuck: Deployment = yaml(
            "metadata: {generation: 1}\nspec: {selector: {}, template: {}}\nstatus: {observedGeneration: 1, conditions: [{type: Progressing, status: 'False', reason: ProgressDeadlineExceeded}]}",
        );
        assert!(matches!(deployment(&stuck), Readiness::Failed(_)));
    }

    #[test]
    fn stateful_set_waits_for_ready_and_revision() {
        let spec = "spec: {serviceName: s, selector: {}, template: {}}";
        let waiting: StatefulSet = yaml(&format!(
            "metadata: {{generation: 1}}\n{spec}\nstatus: {{observedGeneration: 1, replicas: 1, readyReplicas: 0}}"
        ));
        assert_eq!(
            stateful_set(&waiting),
            Readiness::Waiting("0/1 ready".into())
        );
        let rolling: StatefulSet = yaml(&format!(
            "metadata: {{generation: 2}}\n{spec}\nstatus: {{observedGeneration: 2, replicas: 1, readyReplicas: 1, currentRevision: a, updateRevision: b}}"
        ));
        assert!(matches!(stateful_set(&rolling), Readiness::Waiting(m) if m.contains("revision")));
        let ready: StatefulSet = yaml(&format!(
            "metadata: {{generation: 2}}\n{spec}\nstatus: {{observedGeneration: 2, replicas: 1, readyReplicas: 1, currentRevision: b, updateRevision: b}}"
        ));
        assert_eq!(stateful_set(&ready), Readiness::Ready);
    }

    #[test]
    fn revisions_tell_current_pods_from_old_ones() {
        let pod = |hash: &str| -> Pod {
            yaml(&format!(
                "metadata: {{name: p, labels: {{controller-revision-hash: {hash}, pod-template-hash: {hash}}}}}"
            ))
        };
        let spec = "spec: {serviceName: s, selector: {}, template: {}}";
        let unseen: StatefulSet = yaml(&format!(
            "metadata: {{generation: 2}}\n{spec}\nstatus: {{observedGeneration: 1, replicas: 1, currentRevision: a, updateRevision: a}}"
        ));
        assert_eq!(stateful_set_revision(&unseen), None);
        let rolling: StatefulSet = yaml(&format!(
            "metadata: {{generation: 2}}\n{spec}\nstatus: {{observedGeneration: 2, replicas: 1, currentRevision: a, updateRevision: b}}"
        ));
        let revision = stateful_set_revision(&rolling).unwrap();
        assert!(revision.owns(&pod("b")) && !revision.owns(&pod("a")));
        assert!(
            !revision.replaces_old_pods_itself,
            "OrderedReady is the default"
        );
        let parallel: StatefulSet = yaml(
            "metadata: {generation: 2}\nspec: {serviceName: s, selector: {}, template: {}, podManagementPolicy: Parallel}\nstatus: {observedGeneration: 2, replicas: 1, updateRevision: b}",
        );
        assert!(
            stateful_set_revision(&parallel)
                .unwrap()
                .replaces_old_pods_itself
        );

        let d: Deployment = yaml(
            "metadata: {uid: d1, generation: 3, annotations: {deployment.kubernetes.io/revision: '2'}}\nspec: {selector: {}, template: {}}\nstatus: {observedGeneration: 3}",
        );
        let set = |hash: &str, owner: &str, revision: &str| -> ReplicaSet {
            yaml(&format!(
                "metadata: {{name: d-{hash}, labels: {{pod-template-hash: {hash}}}, annotations: {{deployment.kubernetes.io/revision: '{revision}'}}, ownerReferences: [{{apiVersion: apps/v1, kind: Deployment, name: d, uid: {owner}}}]}}\nspec: {{selector: {{}}}}"
            ))
        };
        let sets = [
            set("old", "d1", "1"),
            set("other", "d2", "2"),
            set("new", "d1", "2"),
        ];
        let new = new_replica_set(&d, &sets).unwrap();
        let revision = Revision::of_replica_set(new).unwrap();
        assert!(revision.owns(&pod("new")) && !revision.owns(&pod("old")));
        assert!(deployment_observed(&d));
    }

    #[test]
    fn pod_readiness_is_its_ready_condition() {
        let ready: Pod =
            yaml("metadata: {name: p}\nstatus: {conditions: [{type: Ready, status: 'True'}]}");
        let not: Pod =
            yaml("metadata: {name: p}\nstatus: {conditions: [{type: Ready, status: 'False'}]}");
        assert!(pod_is_ready(&ready));
        assert!(!pod_is_ready(&not));
        assert!(!pod_is_ready(&yaml::<Pod>("metadata: {name: p}")));
    }

    #[test]
    fn pod_problems_are_recognised_and_explained() {
        let pull: Pod = yaml(
            "metadata: {name: gw-1}\nstatus:\n  containerStatuses:\n  - {name: c, image: badimage/x:1, imageID: '', ready: false, restartCount: 0, state: {waiting: {reason: ImagePullBackOff, message: 'Back-off pulling image'}}}",
        );
        let problem = pod_problem(&pull).unwrap();
        assert_eq!(problem.pod(), "gw-1");
        let text = problem.explain("Deployment/api-gateway", None);
        assert!(text.contains("Deployment/api-gateway: pod gw-1 cannot pull its image badimage/x:1: ImagePullBackOff"), "{text}");
        assert!(text.contains("not pushed"), "{text}");

        let crash: Pod = yaml(
            "metadata: {name: db-0}\nstatus:\n  containerStatuses:\n  - {name: postgres, image: p, imageID: '', ready: false, restartCount: 4, state: {waiting: {reason: CrashLoopBackOff}}}",
        );
        let text = pod_problem(&crash)
            .unwrap()
            .explain("StatefulSet/inventory-db", Some("FATAL: bad config"));
        assert!(text.contains("CrashLoopBackOff, 4 restart(s)"), "{text}");
        assert!(text.contains("| FATAL: bad config"), "{text}");
        assert!(text.contains("orchestrator logs inventory-db"), "{text}");

        let pending: Pod = yaml(
            "metadata: {name: a-1}\nstatus:\n  conditions:\n  - {type: PodScheduled, status: 'False', reason: Unschedulable, message: '0/2 nodes are available: 2 Insufficient memory.'}",
        );
        let problem = pod_problem(&pending).unwrap();
        assert!(problem.is_fatal());
        let text = problem.explain("Deployment/a", None);
        assert!(
            text.contains("Insufficient memory") && text.contains("memory_mb"),
            "{text}"
        );
        let binding: Pod = yaml(
            "metadata: {name: db-0}\nstatus:\n  conditions:\n  - {type: PodScheduled, status: 'False', reason: Unschedulable, message: '0/2 nodes are available: 2 pod has unbound immediate PersistentVolumeClaims.'}",
        );
        assert!(!pod_problem(&binding).unwrap().is_fatal());

        let fine: Pod = yaml(
            "metadata: {name: ok}\nstatus:\n  containerStatuses:\n  - {name: c, image: i, imageID: '', ready: false, restartCount: 0, state: {waiting: {reason: ContainerCreating}}}",
        );
        assert_eq!(pod_problem(&fine), None);
    }
}
