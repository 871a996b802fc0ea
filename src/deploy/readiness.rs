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
    if update_strategy(s) == "RollingUpdate"
        && status.update_revision.is_some()
        && status.current_revision != status.update_revision
    {
        let updated = status.updated_replicas.unwrap_or(0);
        return Readiness::Waiting(format!("{updated}/{desired} updated to the new revision"));
    }
    Readiness::Ready
}

/// A workload as a wait last saw it.
#[derive(Debug, Clone)]
pub enum Workload {
    Deployment(Box<Deployment>),
    StatefulSet(Box<StatefulSet>),
}

impl Workload {
    pub fn readiness(&self) -> Readiness {
        match self {
            Workload::Deployment(d) => deployment(d),
            Workload::StatefulSet(s) => stateful_set(s),
        }
    }

    /// Why no pod of its current revision exists, for a timeout's message;
    /// `old_pods` are the pods of older revisions it still has.
    pub fn no_current_pod(&self, namespace: &str, old_pods: &[String]) -> String {
        if let Workload::Deployment(d) = self
            && let Some(failure) = replica_failure(d)
        {
            return failure;
        }
        if old_pods.is_empty() {
            return "no pod was created for it".into();
        }
        let names = old_pods.join(", ");
        match self {
            Workload::StatefulSet(s) if update_strategy(s) == "OnDelete" => format!(
                "it has only pods of an older revision ({names}), and its updateStrategy OnDelete replaces \
                 a pod only once it is deleted: delete them (`kubectl -n {namespace} delete pod {}`) and they \
                 come back with the current revision",
                old_pods.join(" ")
            ),
            _ => format!("it has only pods of an older revision ({names})"),
        }
    }
}

/// Why a Deployment's ReplicaSet creates no pods (a quota, an admission
/// webhook): the ReplicaFailure condition the Deployment controller copies
/// from the ReplicaSet, in words.
fn replica_failure(d: &Deployment) -> Option<String> {
    let condition = d
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")?;
    Some(format!(
        "its ReplicaSet cannot create pods ({}): {}",
        condition.reason.as_deref().unwrap_or("ReplicaFailure"),
        condition.message.as_deref().unwrap_or("no message")
    ))
}

/// The StatefulSet's `updateStrategy.type`: `RollingUpdate` (the default),
/// or `OnDelete`, which replaces a pod only once someone deletes it.
fn update_strategy(s: &StatefulSet) -> &str {
    s.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
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
    let rolling = update_strategy(s) == "RollingUpdate";
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

/// The restarts after which a crash loop is taken as the program's own fault.
/// The kubelet's back-off doubles from 10 s, so the third restart comes about
/// a minute after the first crash: long enough for what a fresh container may
/// briefly miss although its wave's dependencies are Ready (a Service's
/// endpoints, DNS, a database finishing its recovery), and early enough to
/// report a real bug well within a wave's deadline.
const CRASH_LOOP_RESTARTS: i32 = 3;

/// Whether a crashed container's log proves that no restart can help: its
/// program was built for another CPU.
pub fn crash_log_is_fatal(logs: &str) -> bool {
    exec_format_fix(logs).is_some()
}

/// The plain words for a sideloaded image that is not on its node
/// (`ErrImageNeverPull`: the kubelet may not pull it).
fn never_pulled_fix(reason: &str) -> Option<&'static str> {
    (reason == "ErrImageNeverPull").then_some(
        "The image was sideloaded (imagePullPolicy: Never) but that node does not have it: \
         run `orchestrator deploy --sideload` without --skip-build to import it into every node.",
    )
}

/// The plain words for a container whose log says `exec format error`: its
/// image was built for another CPU than its node's.
fn exec_format_fix(logs: &str) -> Option<String> {
    logs.contains("exec format error").then(|| {
        "Its image was built for another CPU than its node's (`exec format error`: e.g. an amd64 \
         image on arm64 VMs). Fix: run `orchestrator deploy` without --platform, which builds for \
         the nodes' architecture (`kubectl get nodes -L kubernetes.io/arch` shows it)."
            .to_string()
    })
}

/// The plain words for a container whose log says it could not write to a
/// read-only file system (`EROFS`: RabbitMQ's upgrade log, a pid file, a
/// cache): the manifests run every root filesystem read-only.
fn read_only_root_fix(logs: &str) -> Option<String> {
    let lower = logs.to_lowercase();
    (lower.contains("read-only file system") || lower.contains("erofs")).then(|| {
        "It writes where its root filesystem is read-only (securityContext.readOnlyRootFilesystem: \
         true): mount a volume there (an emptyDir), at the path its log names."
            .to_string()
    })
}

/// Why an image pull failed, as far as retrying it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullFailure {
    /// The image does not exist, may not be pulled, or is misnamed: no retry succeeds.
    Permanent,
    /// The registry, or the way to it, fails for now (the cause in words):
    /// the kubelet's next try may succeed.
    Transient(&'static str),
    /// The message does not say why: a kubelet before 1.30 backs off with a
    /// bare "Back-off pulling image", its cause shown only in the failed pull before.
    Unexplained,
}

/// What a pull failure's message says that no retry can change (lowercase).
const PERMANENT_PULL: &[&str] = &[
    "not found",
    "manifest unknown",
    "name unknown",
    "unauthorized",
    "pull access denied",
    "repository does not exist",
    "insufficient_scope",
    "requested access to the resource is denied",
    "invalid reference format",
];

/// What a pull failure's message says that passes (lowercase), and the cause in words.
const TRANSIENT_PULL: &[(&str, &str)] = &[
    (
        "toomanyrequests",
        "the registry's pull rate limit (429 toomanyrequests)",
    ),
    (
        "too many requests",
        "the registry's pull rate limit (429 toomanyrequests)",
    ),
    ("timeout", "a timeout on the way to the registry"),
    ("timed out", "a timeout on the way to the registry"),
    ("deadline exceeded", "a timeout on the way to the registry"),
    ("connection reset", "a connection to the registry reset"),
    ("connection refused", "a connection to the registry refused"),
    ("broken pipe", "a connection to the registry cut"),
    ("unexpected eof", "a connection to the registry cut"),
    ("500 internal server error", "a registry server error (5xx)"),
    ("502 bad gateway", "a registry server error (5xx)"),
    ("503 service unavailable", "a registry server error (5xx)"),
    ("504 gateway", "a registry server error (5xx)"),
];

/// Classifies a pull failure by the kubelet's waiting reason and message.
pub fn pull_failure(reason: &str, message: &str) -> PullFailure {
    if matches!(reason, "InvalidImageName" | "ErrImageNeverPull") {
        return PullFailure::Permanent;
    }
    let message = message.to_lowercase();
    if PERMANENT_PULL.iter().any(|m| message.contains(m)) {
        return PullFailure::Permanent;
    }
    TRANSIENT_PULL
        .iter()
        .find(|(m, _)| message.contains(m))
        .map_or(PullFailure::Unexplained, |(_, cause)| {
            PullFailure::Transient(cause)
        })
}

/// At most this many lines of a crashed container's log are shown.
const EXCERPT_LINES: usize = 12;
/// The last lines shown whatever they say: where the program stopped.
const EXCERPT_TAIL: usize = 3;
/// The width a shown line is cut to (a crash report's terms run long).
const EXCERPT_WIDTH: usize = 200;
/// Words of a line that says why a program stopped (lowercase).
const TELLING_WORDS: &[&str] = &[
    "error",
    "fatal",
    "panic",
    "fail",
    "terminated",
    "exception",
    "traceback",
    "denied",
];

/// Whether a log line says why a program stopped. An `[error]` level tag
/// alone does not: Erlang's logger (RabbitMQ) writes every line of a crash
/// report's process dump (`heap_size`, `stack_size`...) at that level.
fn says_why(line: &str) -> bool {
    let text = line
        .to_lowercase()
        .replace("[error]", "")
        .replace("[err]", "");
    TELLING_WORDS.iter().any(|word| text.contains(word))
}

/// The lines of a crashed container's log worth showing, in log order: the
/// last of those that say why it stopped, often far above the end (RabbitMQ's
/// `BOOT FAILED` precedes a long crash report), then its last lines; each
/// once, at most [`EXCERPT_LINES`], each cut to [`EXCERPT_WIDTH`].
pub fn log_excerpt(log: &str) -> Vec<String> {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.trim().is_empty())
        .collect();
    let tail = lines.len().saturating_sub(EXCERPT_TAIL);
    let candidates: Vec<usize> = (0..lines.len())
        .filter(|&i| i >= tail || says_why(lines[i]))
        .collect();
    // RabbitMQ prints its boot failure twice, bare and with its log prefix:
    // a line another candidate contains is shown once, as the longer one
    // (or, for the same text, the later).
    let distinct: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|&i| {
            let text = lines[i].trim();
            !candidates.iter().any(|&j| {
                let other = lines[j].trim();
                j != i && other.contains(text) && (other.len() > text.len() || j > i)
            })
        })
        .collect();
    let kept_tail = distinct.iter().filter(|&&i| i >= tail).count();
    let telling = distinct.len() - kept_tail;
    distinct
        .iter()
        .skip(telling.saturating_sub(EXCERPT_LINES - kept_tail))
        .map(|&i| cut(lines[i], EXCERPT_WIDTH))
        .collect()
}

/// `line` cut to `width` characters, ending in `…` when cut.
fn cut(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_string();
    }
    let mut short: String = line.chars().take(width - 1).collect();
    short.push('…');
    short
}

impl PodProblem {
    /// Whether waiting cannot cure it. A pod that is unschedulable only while
    /// its volume binds, say, is not; one that needs more memory than any node has is.
    /// A pull is retried by the kubelet, so only a cause no retry changes is
    /// fatal; a crash loop is after [`CRASH_LOOP_RESTARTS`].
    pub fn is_fatal(&self) -> bool {
        match self {
            PodProblem::Unschedulable { message, .. } => message.contains("Insufficient"),
            PodProblem::ImagePull {
                reason, message, ..
            } => pull_failure(reason, message) == PullFailure::Permanent,
            PodProblem::CrashLoop { restarts, .. } => *restarts >= CRASH_LOOP_RESTARTS,
        }
    }

    /// What is wrong for now, in a few words, while waiting on.
    pub fn summary(&self) -> String {
        match self {
            PodProblem::ImagePull {
                pod,
                reason,
                message,
                ..
            } => match pull_failure(reason, message) {
                PullFailure::Transient(cause) => {
                    format!("pod {pod} cannot pull its image yet ({reason}: {cause})")
                }
                _ => format!("pod {pod} cannot pull its image yet ({reason})"),
            },
            PodProblem::CrashLoop {
                pod,
                container,
                restarts,
            } => {
                format!("container {container} of pod {pod} crashed ({restarts} restart(s) so far)")
            }
            PodProblem::Unschedulable { pod, message } => {
                format!("pod {pod} is not scheduled yet: {message}")
            }
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
                const NOT_PULLABLE: &str = "Likely fixes: the image was not pushed (run `orchestrator deploy` without --skip-push), \
                     the repository is private on Docker Hub (make it public or add an imagePullSecret), \
                     or registry.namespace / DOCKERHUB_USERNAME names the wrong account.";
                let fixes = match pull_failure(reason, message) {
                    PullFailure::Transient(cause) => format!(
                        "The registry failed the pull for a reason that passes ({cause}), and kept failing it \
                         until the deadline. Likely fixes: log in to Docker Hub on the nodes, so their pulls count \
                         against an account (K3s reads registry credentials from /etc/rancher/k3s/registries.yaml); \
                         run `orchestrator deploy --sideload` to import the images into the nodes instead of pulling \
                         them; or wait (Docker Hub's anonymous limit is per address and per hour) and deploy again."
                    ),
                    PullFailure::Unexplained => format!(
                        "{NOT_PULLABLE} If the registry was busy or unreachable (a pull limit, a timeout), wait and deploy again."
                    ),
                    PullFailure::Permanent => {
                        never_pulled_fix(reason).unwrap_or(NOT_PULLABLE).to_string()
                    }
                };
                format!(
                    "{workload}: pod {pod} cannot pull its image {image}: {reason}{detail}.\n  {fixes}"
                )
            }
            PodProblem::CrashLoop {
                pod,
                container,
                restarts,
            } => {
                let known = logs.and_then(|l| exec_format_fix(l).or_else(|| read_only_root_fix(l)));
                let fixes = known.unwrap_or_else(|| {
                    format!(
                        "Likely fixes: a wrong setting or credential in app-config or the Secrets, or a database that \
                         is not reachable; see `orchestrator logs {}`.",
                        workload.rsplit('/').next().unwrap_or(workload)
                    )
                });
                let logs = match logs {
                    Some(text) if !text.trim().is_empty() => log_excerpt(text)
                        .iter()
                        .map(|l| format!("\n  | {l}"))
                        .collect::<String>(),
                    _ => "\n  (its logs could not be read)".into(),
                };
                format!(
                    "{workload}: container {container} of pod {pod} keeps crashing (CrashLoopBackOff, {restarts} restart(s)).\n  \
                     Its previous run's log, the lines that say why and the last ones:{logs}\n  {fixes}"
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
    use std::collections::HashSet;

    fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
        serde_yaml_ng::from_str(text).unwrap()
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

    /// A pod whose one container waits with `reason` and `message`, restarted `restarts` times.
    fn waiting_pod(reason: &str, message: &str, restarts: i32) -> Pod {
        waiting_container(
            ["gw-1", "c", "docker.io/student/api-gateway:1"],
            reason,
            message,
            restarts,
        )
    }

    /// [`waiting_pod`] with the pod's, its container's and its image's names.
    fn waiting_container(
        [pod, container, image]: [&str; 3],
        reason: &str,
        message: &str,
        restarts: i32,
    ) -> Pod {
        let status = serde_json::json!({"containerStatuses": [{
            "name": container, "image": image, "imageID": "", "ready": false,
            "restartCount": restarts, "state": {"waiting": {"reason": reason, "message": message}}
        }]});
        serde_json::from_value(serde_json::json!({"metadata": {"name": pod}, "status": status}))
            .unwrap()
    }

    fn pull_problem(reason: &str, message: &str) -> PodProblem {
        pod_problem(&waiting_pod(reason, message, 0)).expect("a pull problem")
    }

    /// Docker Hub's answer to an anonymous pull past its limit, as containerd words it.
    const TOO_MANY_REQUESTS: &str = "failed to pull and unpack image \"docker.io/student/api-gateway:1\": failed to copy: httpReadSeeker: failed open: unexpected status code https://registry-1.docker.io/v2/student/api-gateway/manifests/1: 429 Too Many Requests - Server message: toomanyrequests: You have reached your unauthenticated pull rate limit. https://www.docker.com/increase-rate-limit";

    #[test]
    fn a_pull_the_registry_may_grant_later_is_waited_for() {
        let back_off = format!(
            "Back-off pulling image \"docker.io/student/api-gateway:1\": ErrImagePull: {TOO_MANY_REQUESTS}"
        );
        for (reason, message) in [
            ("ErrImagePull", TOO_MANY_REQUESTS),
            ("ImagePullBackOff", back_off.as_str()),
            (
                "ErrImagePull",
                "failed to pull and unpack image \"docker.io/student/api-gateway:1\": failed to resolve reference \"docker.io/student/api-gateway:1\": failed to do request: Head \"https://registry-1.docker.io/v2/student/api-gateway/manifests/1\": net/http: TLS handshake timeout",
            ),
            (
                "ErrImagePull",
                "failed to pull and unpack image \"docker.io/student/api-gateway:1\": failed to resolve reference \"docker.io/student/api-gateway:1\": failed to do request: Head \"https://registry-1.docker.io/v2/student/api-gateway/manifests/1\": dial tcp 54.227.20.253:443: i/o timeout",
            ),
            (
                "ErrImagePull",
                "failed to pull and unpack image \"docker.io/student/api-gateway:1\": failed to copy: read tcp 10.0.2.15:51234->104.16.99.55:443: read: connection reset by peer",
            ),
            (
                "ErrImagePull",
                "failed to pull and unpack image \"docker.io/student/api-gateway:1\": failed to resolve reference \"docker.io/student/api-gateway:1\": unexpected status from HEAD request to https://registry-1.docker.io/v2/student/api-gateway/manifests/1: 503 Service Unavailable",
            ),
            (
                "ErrImagePull",
                "failed to pull and unpack image \"docker.io/student/api-gateway:1\": failed to copy: httpReadSeeker: failed open: unexpected status code https://registry-1.docker.io/v2/student/api-gateway/blobs/sha256:4c1a: 502 Bad Gateway",
            ),
            (
                "ErrImagePull",
                "rpc error: code = Unknown desc = failed to pull and unpack image \"docker.io/student/api-gateway:1\": context deadline exceeded",
            ),
        ] {
            let problem = pull_problem(reason, message);
            assert!(!problem.is_fatal(), "{reason}: {message} can heal");
        }
    }

    #[test]
    fn a_pull_that_cannot_succeed_is_fatal_at_once() {
        for (reason, message) in [
            (
                "ErrImagePull",
                "rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/student/api-gateway:1\": failed to resolve reference \"docker.io/student/api-gateway:1\": docker.io/student/api-gateway:1: not found",
            ),
            (
                "ImagePullBackOff",
                "Back-off pulling image \"docker.io/student/api-gateway:1\": ErrImagePull: failed to resolve reference \"docker.io/student/api-gateway:1\": docker.io/student/api-gateway:1: not found",
            ),
            (
                "ErrImagePull",
                "Error response from daemon: manifest for student/api-gateway:1 not found: manifest unknown: manifest unknown",
            ),
            (
                "ErrImagePull",
                "failed to pull and unpack image \"docker.io/student/api-gateway:1\": failed to resolve reference \"docker.io/student/api-gateway:1\": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed",
            ),
            (
                "ErrImagePull",
                "failed to pull and unpack image \"docker.io/student/api-gateway:1\": failed to resolve reference \"docker.io/student/api-gateway:1\": unexpected status from HEAD request to https://registry-1.docker.io/v2/student/api-gateway/manifests/1: 401 Unauthorized",
            ),
            (
                "InvalidImageName",
                "Failed to apply default image tag \"Student/API:1\": couldn't parse image reference \"Student/API:1\": invalid reference format: repository name must be lowercase",
            ),
            (
                "ErrImageNeverPull",
                "Container image \"orchestrator.local/api-gateway:1\" is not present with pull policy of Never",
            ),
        ] {
            let problem = pull_problem(reason, message);
            assert!(problem.is_fatal(), "{reason}: {message} cannot heal");
        }
    }

    #[test]
    fn a_pull_refused_for_now_is_explained_with_what_gets_past_the_limit() {
        let text =
            pull_problem("ErrImagePull", TOO_MANY_REQUESTS).explain("Deployment/api-gateway", None);
        assert!(text.contains("toomanyrequests"), "{text}");
        for advice in ["registries.yaml", "--sideload", "wait"] {
            assert!(text.contains(advice), "{advice:?} missing: {text}");
        }
        assert!(!text.contains("not pushed"), "{text}");
        let text = pull_problem("ErrImagePull", "docker.io/student/api-gateway:1: not found")
            .explain("Deployment/api-gateway", None);
        assert!(
            text.contains("not pushed") && !text.contains("registries.yaml"),
            "{text}"
        );
    }

    #[test]
    fn a_crash_loop_is_fatal_after_a_few_restarts() {
        let crashing = |restarts| {
            pod_problem(&waiting_pod(
                "CrashLoopBackOff",
                "back-off 10s restarting failed container",
                restarts,
            ))
            .unwrap()
        };
        assert!(
            !crashing(1).is_fatal(),
            "one back-off may be a dependency still starting"
        );
        assert!(!crashing(2).is_fatal());
        assert!(crashing(3).is_fatal());
        assert!(crash_log_is_fatal(
            "exec /usr/local/bin/app: exec format error\n"
        ));
        assert!(!crash_log_is_fatal(
            "FATAL: password authentication failed for user \"inventory\"\n"
        ));
    }

    /// RabbitMQ refusing to boot on a read-only log directory, as a real
    /// kubelet serves its previous container's log: the cause is far above
    /// the crash report's tail.
    const RABBITMQ_BOOT_FAILURE: &str = r#"2026-12-07 10:00:00.512 [notice] <0.44.0> Application syslog exited with reason: stopped
2026-12-07 10:00:00.530 [info] <0.230.0> Feature flags: list of feature flags found:
2026-12-07 10:00:00.531 [info] <0.230.0> Feature flags:   [x] classic_mirrored_queue_version
2026-12-07 10:00:00.531 [info] <0.230.0> Feature flags:   [x] quorum_queue
2026-12-07 10:00:00.532 [info] <0.230.0> Feature flags: feature flag states written to disk: yes
2026-12-07 10:00:01.120 [info] <0.230.0> Starting RabbitMQ 3.13.7 on Erlang 26.2.5
2026-12-07 10:00:01.123 [error] <0.230.0>
2026-12-07 10:00:01.123 [error] <0.230.0> BOOT FAILED
2026-12-07 10:00:01.123 [error] <0.230.0> ===========
2026-12-07 10:00:01.124 [error] <0.230.0> Error during startup: {error,{cannot_log_to_file,"/var/log/rabbitmq/rabbit@rabbitmq-0_upgrade.log",erofs}}
2026-12-07 10:00:01.124 [error] <0.230.0>

BOOT FAILED
===========
Error during startup: {error,{cannot_log_to_file,"/var/log/rabbitmq/rabbit@rabbitmq-0_upgrade.log",erofs}}

2026-12-07 10:00:02.125 [error] <0.229.0>   crasher:
2026-12-07 10:00:02.125 [error] <0.229.0>     initial call: application_master:init/4
2026-12-07 10:00:02.125 [error] <0.229.0>     pid: <0.229.0>
2026-12-07 10:00:02.125 [error] <0.229.0>     registered_name: []
2026-12-07 10:00:02.125 [error] <0.229.0>     exception exit: {{cannot_log_to_file,"/var/log/rabbitmq/rabbit@rabbitmq-0_upgrade.log",erofs},{rabbit_prelaunch_sup,start_link,[]}}
2026-12-07 10:00:02.125 [error] <0.229.0>       in function  application_master:init/4 (application_master.erl, line 142)
2026-12-07 10:00:02.125 [error] <0.229.0>     ancestors: [<0.228.0>]
2026-12-07 10:00:02.125 [error] <0.229.0>     message_queue_len: 1
2026-12-07 10:00:02.125 [error] <0.229.0>     messages: [{'EXIT',<0.230.0>,normal}]
2026-12-07 10:00:02.125 [error] <0.229.0>     links: [<0.228.0>,<0.44.0>]
2026-12-07 10:00:02.125 [error] <0.229.0>     dictionary: []
2026-12-07 10:00:02.125 [error] <0.229.0>     trap_exit: true
2026-12-07 10:00:02.125 [error] <0.229.0>     status: running
2026-12-07 10:00:02.125 [error] <0.229.0>     heap_size: 987
2026-12-07 10:00:02.125 [error] <0.229.0>     stack_size: 28
2026-12-07 10:00:02.125 [error] <0.229.0>     reductions: 175
2026-12-07 10:00:02.125 [error] <0.229.0>   neighbours:
2026-12-07 10:00:02.126 [notice] <0.44.0> Application rabbit exited with reason: {{cannot_log_to_file,"/var/log/rabbitmq/rabbit@rabbitmq-0_upgrade.log",erofs},{rabbit_prelaunch_sup,start_link,[]}}
Runtime terminating during boot ({application_start_failure,rabbit,{{cannot_log_to_file,"/var/log/rabbitmq/rabbit@rabbitmq-0_upgrade.log",erofs},{rabbit_prelaunch_sup,start_link,[]}}})
Kernel pid terminated (application_controller) ({application_start_failure,rabbit,{{cannot_log_to_file,"/var/log/rabbitmq/rabbit@rabbitmq-0_upgrade.log",erofs},{rabbit_prelaunch_sup,start_link,[]}}})

Crash dump is being written to: erl_crash.dump...
    heap_size: 987
    stack_size: 28
    reductions: 1234
"#;

    #[test]
    fn a_crash_loops_log_is_cut_to_the_lines_that_say_why() {
        let excerpt = log_excerpt(RABBITMQ_BOOT_FAILURE);
        let shown = excerpt.join("\n");
        assert!(excerpt.len() <= 12, "{} lines:\n{shown}", excerpt.len());
        for line in &excerpt {
            assert!(line.chars().count() <= 200, "too wide: {line}");
        }
        for why in [
            "BOOT FAILED",
            "Error during startup: {error,{cannot_log_to_file",
            "Kernel pid terminated",
        ] {
            assert!(shown.contains(why), "{why:?} missing:\n{shown}");
        }
        assert!(
            shown.ends_with("    reductions: 1234"),
            "the last lines come last:\n{shown}"
        );
        assert!(!shown.contains("Feature flags"), "{shown}");
        let positions: Vec<usize> = excerpt
            .iter()
            .map(|line| {
                RABBITMQ_BOOT_FAILURE
                    .rfind(line.trim_end_matches('…'))
                    .expect("a line of the log")
            })
            .collect();
        assert!(positions.is_sorted(), "in log order:\n{shown}");
        let unique: HashSet<&String> = excerpt.iter().collect();
        assert_eq!(unique.len(), excerpt.len(), "no line twice:\n{shown}");

        let text = pod_problem(&waiting_pod(
            "CrashLoopBackOff",
            "back-off 40s restarting failed container",
            3,
        ))
        .unwrap()
        .explain("StatefulSet/rabbitmq", Some(RABBITMQ_BOOT_FAILURE));
        assert_eq!(text.matches("\n  | ").count(), excerpt.len(), "{text}");
        assert!(text.contains("cannot_log_to_file"), "{text}");

        let quiet = "listening on 0.0.0.0:8080\nconnected to inventory-db\n";
        assert_eq!(
            log_excerpt(quiet),
            ["listening on 0.0.0.0:8080", "connected to inventory-db"]
        );
        let wide = format!("panic: {}\n", "x".repeat(500));
        let cut = log_excerpt(&wide);
        assert_eq!(cut.len(), 1);
        assert!(
            cut[0].starts_with("panic: x") && cut[0].ends_with('…'),
            "{cut:?}"
        );
        assert!(cut[0].chars().count() <= 200);
    }

    /// What a failed deploy says of each kind of pod problem, word for word:
    /// a change of wording shows as a snapshot diff to review (`cargo insta review`).
    #[test]
    fn a_failed_deploys_diagnosis_reads_as_reviewed() {
        let problem = |names, reason, message, restarts| {
            pod_problem(&waiting_container(names, reason, message, restarts)).unwrap()
        };
        const RABBITMQ: [&str; 3] = ["rabbitmq-0", "rabbitmq", "rabbitmq:3.13-management"];
        const GATEWAY: [&str; 3] = [
            "api-gateway-7c9d5-x2k4q",
            "api-gateway",
            "docker.io/student/api-gateway:1",
        ];
        let crash = |workload, names, logs| {
            let back_off = "back-off 40s restarting failed container";
            problem(names, "CrashLoopBackOff", back_off, 3).explain(workload, logs)
        };
        let pull = |image, reason, message| {
            problem([GATEWAY[0], GATEWAY[1], image], reason, message, 0)
                .explain("Deployment/api-gateway", None)
        };
        let unschedulable: Pod = yaml(
            "metadata: {name: inventory-app-1}\nstatus:\n  conditions:\n  - {type: PodScheduled, status: 'False', reason: Unschedulable, message: '0/2 nodes are available: 2 Insufficient memory.'}",
        );
        let cases = [
            (
                "crash loop, its log",
                crash(
                    "StatefulSet/rabbitmq",
                    RABBITMQ,
                    Some(RABBITMQ_BOOT_FAILURE),
                ),
            ),
            (
                "crash loop, another CPU",
                crash(
                    "Deployment/api-gateway",
                    GATEWAY,
                    Some("exec /usr/local/bin/api-gateway: exec format error\n"),
                ),
            ),
            (
                "crash loop, no log",
                crash("Deployment/api-gateway", GATEWAY, None),
            ),
            (
                "pull: not pushed",
                pull(
                    GATEWAY[2],
                    "ErrImagePull",
                    "docker.io/student/api-gateway:1: not found",
                ),
            ),
            (
                "pull: rate limit",
                pull(GATEWAY[2], "ErrImagePull", TOO_MANY_REQUESTS),
            ),
            (
                "pull: no cause given",
                pull(
                    GATEWAY[2],
                    "ImagePullBackOff",
                    "Back-off pulling image \"docker.io/student/api-gateway:1\"",
                ),
            ),
            (
                "pull: sideloaded image missing",
                pull(
                    "orchestrator.local/api-gateway:1",
                    "ErrImageNeverPull",
                    "Container image \"orchestrator.local/api-gateway:1\" is not present with pull policy of Never",
                ),
            ),
            (
                "unschedulable",
                pod_problem(&unschedulable)
                    .unwrap()
                    .explain("Deployment/inventory-app", None),
            ),
        ];
        let text: String = cases
            .iter()
            .map(|(case, text)| format!("--- {case}\n{text}\n"))
            .collect();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn a_timeout_without_current_pods_says_what_holds_them_back() {
        let on_delete: StatefulSet = yaml(
            "metadata: {name: rabbitmq, generation: 2}\nspec: {serviceName: s, selector: {}, template: {}, updateStrategy: {type: OnDelete}}\nstatus: {observedGeneration: 2, replicas: 1, currentRevision: a, updateRevision: b}",
        );
        let text = Workload::StatefulSet(Box::new(on_delete))
            .no_current_pod("stack", &["rabbitmq-0".into()]);
        assert!(
            text.contains("OnDelete") && text.contains("rabbitmq-0"),
            "{text}"
        );
        assert!(text.contains("delete them"), "{text}");
        assert!(
            text.contains("kubectl -n stack delete pod rabbitmq-0"),
            "{text}"
        );

        let quota = "pods \"inventory-app-7c9d5-x2k4q\" is forbidden: exceeded quota: compute, requested: memory=512Mi, used: memory=1Gi, limited: memory=1Gi";
        let failing: Deployment = yaml(&format!(
            "metadata: {{name: inventory-app, generation: 1}}\nspec: {{selector: {{}}, template: {{}}}}\nstatus: {{observedGeneration: 1, conditions: [{{type: ReplicaFailure, status: 'True', reason: FailedCreate, message: '{quota}'}}]}}"
        ));
        let text = Workload::Deployment(Box::new(failing)).no_current_pod("stack", &[]);
        assert!(
            text.contains("FailedCreate") && text.contains(quota),
            "{text}"
        );
        assert!(!text.contains("no pod was created"), "{text}");

        let plain: Deployment = yaml(
            "metadata: {name: a, generation: 1}\nspec: {selector: {}, template: {}}\nstatus: {observedGeneration: 1}",
        );
        let text = Workload::Deployment(Box::new(plain.clone())).no_current_pod("stack", &[]);
        assert_eq!(text, "no pod was created for it");
        let text =
            Workload::Deployment(Box::new(plain)).no_current_pod("stack", &["a-old-1".into()]);
        assert!(
            text.contains("only pods of an older revision") && text.contains("a-old-1"),
            "{text}"
        );
    }

    #[test]
    fn exec_format_error_is_explained_as_the_wrong_cpu() {
        let fix = exec_format_fix("exec /usr/local/bin/app: exec format error").unwrap();
        assert!(
            fix.contains("another CPU") && fix.contains("--platform"),
            "{fix}"
        );
        assert_eq!(
            exec_format_fix("FATAL: password authentication failed"),
            None
        );
    }

    #[test]
    fn a_write_to_the_read_only_root_is_explained() {
        // RabbitMQ's words, as it crash-looped on a real kubelet without a volume for its logs.
        let erlang = "failed to open log file at '/var/log/rabbitmq/rabbit@rabbitmq-0_upgrade.log', \
                      reason: read-only file system\n{cannot_log_to_file,\"/var/log/rabbitmq/x.log\",erofs}";
        let fix = read_only_root_fix(erlang).unwrap();
        assert!(
            fix.contains("readOnlyRootFilesystem") && fix.contains("emptyDir"),
            "{fix}"
        );
        let rust = "Error: Read-only file system (os error 30)";
        assert!(read_only_root_fix(rust).is_some());
        assert_eq!(
            read_only_root_fix("FATAL: password authentication failed"),
            None
        );
    }

    #[test]
    fn a_sideloaded_image_missing_on_its_node_is_explained() {
        let pod: k8s_openapi::api::core::v1::Pod = serde_yaml_ng::from_str(
            "metadata: {name: gw-1}\nstatus:\n  containerStatuses:\n  - {name: c, image: 'orchestrator.local/api-gateway:t', imageID: '', ready: false, restartCount: 0, state: {waiting: {reason: ErrImageNeverPull, message: 'Container image is not present with pull policy of Never'}}}",
        )
        .unwrap();
        let problem = crate::deploy::readiness::pod_problem(&pod).expect("a problem");
        let text = problem.explain("Deployment/api-gateway", None);
        assert!(
            text.contains(
                "cannot pull its image orchestrator.local/api-gateway:t: ErrImageNeverPull"
            ),
            "{text}"
        );
        assert!(
            text.contains("deploy --sideload` without --skip-build"),
            "{text}"
        );
        assert!(!text.contains("Docker Hub"), "{text}");
    }
}
