//! The label and annotation keys the tool reads and writes on the cluster, in
//! one place.

/// The label every object of the stack carries; its value is the component
/// (`logs`, `verify` and the dashboard select pods by it).
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/name";
/// The label of what belongs to the stack without being a component (the
/// Secrets deploy creates).
pub const PART_OF: &str = "app.kubernetes.io/part-of";
/// The label deploy sets on every object it applies, to [`MANAGER`].
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The field manager of every apply, and the value of [`MANAGED_BY`].
pub const MANAGER: &str = "orchestrator";
/// On a workload: the components that must be ready before it starts.
pub const DEPENDS_ON: &str = "orchestrator/depends-on";

/// The ApplySet parent's name, and KEP-3659's label and annotations.
pub const APPLYSET_PARENT: &str = "orchestrator-applyset";
pub const APPLYSET_ID: &str = "applyset.kubernetes.io/id";
pub const APPLYSET_PART_OF: &str = "applyset.kubernetes.io/part-of";
pub const APPLYSET_KINDS: &str = "applyset.kubernetes.io/contains-group-kinds";
pub const APPLYSET_TOOLING: &str = "applyset.kubernetes.io/tooling";
