//! Extras that `deploy --with NAME` adds to the stack. They are the tool's
//! own objects, not the student's manifests: `kubectl apply -k manifests` and
//! the audit never see them, and a later deploy without `--with NAME` prunes
//! them like any object that left the manifests.

use std::fmt;
use std::str::FromStr;

use super::manifest::{self, Manifest};

/// An optional extra of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addon {
    /// Headlamp, read-only in the stack's namespace (the exercise's bonus
    /// "dashboard"; `orchestrator dashboard` needs nothing in the cluster).
    Dashboard,
}

impl Addon {
    pub const ALL: [Addon; 1] = [Addon::Dashboard];

    pub fn name(self) -> &'static str {
        match self {
            Addon::Dashboard => "dashboard",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Addon::Dashboard => include_str!("addons/dashboard.yaml"),
        }
    }

    /// Its objects for the stack's namespace.
    pub fn manifests(self, namespace: &str) -> anyhow::Result<Vec<Manifest>> {
        let file = format!("(--with {self})");
        manifest::parse(&file, &self.text().replace("NAMESPACE", namespace))
    }

    /// How to open it once deployed.
    pub fn how_to_open(self, namespace: &str) -> String {
        match self {
            Addon::Dashboard => format!(
                "dashboard (read-only): `kubectl -n {namespace} port-forward svc/dashboard 8080:80`, \
                 open http://localhost:8080 and sign in with the token `kubectl -n {namespace} create token dashboard` prints"
            ),
        }
    }
}

impl fmt::Display for Addon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Addon {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Addon::ALL
            .into_iter()
            .find(|addon| addon.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Addon::ALL.iter().map(|a| a.name()).collect();
                format!("no such addon; the addons are {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_can_only_read_its_namespace() {
        let objects = Addon::Dashboard.manifests("shop").unwrap();
        let keys: Vec<String> = objects.iter().map(Manifest::key).collect();
        assert_eq!(
            keys,
            [
                "ServiceAccount/dashboard",
                "RoleBinding/dashboard-view",
                "Deployment/dashboard",
                "Service/dashboard",
                "NetworkPolicy/dashboard"
            ]
        );
        let binding = &objects[1].body;
        assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
        assert_eq!(binding["roleRef"]["name"], "view");
        assert_eq!(binding["subjects"][0]["namespace"], "shop");
        assert!(objects.iter().all(|m| m.kind != "ClusterRoleBinding"));
        assert_eq!(objects[3].body["spec"].get("type"), None, "ClusterIP only");
    }

    #[test]
    fn addons_are_named() {
        assert_eq!("dashboard".parse::<Addon>(), Ok(Addon::Dashboard));
        assert_eq!(
            "grafana".parse::<Addon>().unwrap_err(),
            "no such addon; the addons are dashboard"
        );
    }
}
