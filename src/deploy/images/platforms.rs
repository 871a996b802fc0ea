//! What the nodes run (`linux/arm64`), read from the nodes themselves or
//! given with `--platform`, and the refusals that follow from it: an image
//! lacking a node's platform would only crash-loop there with `exec format
//! error`, and a builder of one platform fails a multi-platform build after
//! the other images started. Both are refused before anything is built.

use std::collections::BTreeMap;

use anyhow::bail;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use super::Image;
use crate::error::Failure;
use crate::preflight::{Builder, MULTI_PLATFORM_FIX};

/// Each platform the nodes run (`linux/arm64`) and the nodes that run it.
pub type NodePlatforms = BTreeMap<String, Vec<String>>;

/// The nodes' platforms, from their `kubernetes.io/os` and `kubernetes.io/arch`
/// labels (the kubelet sets them), else from what the kubelet reports.
pub fn node_platforms(nodes: &[Node]) -> NodePlatforms {
    let mut platforms = NodePlatforms::new();
    for node in nodes {
        let label = |key: &str| {
            node.metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get(key))
                .cloned()
        };
        let info = node.status.as_ref().and_then(|s| s.node_info.as_ref());
        let arch = label("kubernetes.io/arch").or_else(|| info.map(|i| i.architecture.clone()));
        let os = label("kubernetes.io/os").or_else(|| info.map(|i| i.operating_system.clone()));
        let Some(arch) = arch.filter(|a| !a.is_empty()) else {
            continue;
        };
        let os = os
            .filter(|o| !o.is_empty())
            .unwrap_or_else(|| "linux".into());
        platforms
            .entry(format!("{os}/{arch}"))
            .or_default()
            .push(node.metadata.name.clone().unwrap_or_default());
    }
    platforms
}

/// The platforms of the cluster's nodes. When they cannot be read (a user
/// without the right to list nodes) but `--platform` names the platforms
/// (`given`), there is nothing to check them against: an empty map.
pub async fn cluster_platforms(
    client: &kube::Client,
    given: &[String],
) -> anyhow::Result<NodePlatforms> {
    let nodes = match Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(nodes) => nodes,
        Err(_) if !given.is_empty() => return Ok(NodePlatforms::new()),
        Err(err) => {
            return Err(anyhow::Error::new(err).context(
                "cannot list the cluster's nodes to learn their CPU architecture \
                 (name the platforms with --platform, e.g. --platform linux/amd64)",
            ));
        }
    };
    let platforms = node_platforms(&nodes.items);
    if platforms.is_empty() && given.is_empty() {
        bail!(
            "cannot tell the nodes' CPU architecture (no node has a kubernetes.io/arch label): \
             name it with --platform, e.g. --platform linux/amd64"
        );
    }
    Ok(platforms)
}

/// Checks `--platform` values (`os/arch` or `os/arch/variant`, as docker takes them).
pub fn parse_platforms(values: &[String]) -> anyhow::Result<Vec<String>> {
    let mut platforms: Vec<String> = Vec::new();
    for value in values.iter().flat_map(|v| v.split(',')).map(str::trim) {
        let parts: Vec<&str> = value.split('/').collect();
        let valid = (2..=3).contains(&parts.len())
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        if !valid {
            return Err(Failure::Usage(format!(
                "--platform {value:?} is not a platform such as linux/amd64 or linux/arm64"
            ))
            .into());
        }
        if !platforms.iter().any(|p| p == value) {
            platforms.push(value.to_string());
        }
    }
    Ok(platforms)
}

/// Fails, naming each image and node, when an image the cluster would get
/// lacks the platform of some node (images of unknown platforms pass).
pub fn check_platforms(images: &[Image], nodes: &NodePlatforms) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for image in images.iter().filter(|i| !i.platforms.is_empty()) {
        for (platform, names) in nodes {
            if !image.platforms.contains(platform) {
                problems.push(format!(
                    "{} is built for {}, but node {} runs {platform}",
                    image.reference,
                    image.platforms.join(", "),
                    names.join(", ")
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let all: Vec<&str> = nodes.keys().map(String::as_str).collect();
    bail!(
        "refusing images that would crash on the nodes with `exec format error` (nothing was applied):\n  {}\n  \
         Build for the nodes: deploy without --platform (it builds for the nodes' platforms), \
         or with --platform {}",
        problems.join("\n  "),
        all.join(",")
    )
}

/// Fails before anything is built when the build needs several platforms and
/// the builder holds one (Docker's default: "Multi-platform build is not
/// supported for the docker driver", after the other images started).
pub fn check_builder(builder: Option<&Builder>, platforms: &[String]) -> anyhow::Result<()> {
    match builder {
        Some(builder) if platforms.len() > 1 && !builder.multi_platform => Err(Failure::HostNotReady(format!(
            "the images must be built for {} at once, but docker's builder ({} driver) builds one \
             platform at a time; nothing was built.\n  Fix: {MULTI_PLATFORM_FIX}; or deploy to \
             nodes of one CPU",
            platforms.join(" and "),
            builder.driver
        ))
        .into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::images::tests::image;

    fn node(name: &str, labels: &str, info_arch: &str) -> Node {
        serde_yaml_ng::from_str(&format!(
            "metadata: {{name: {name}, labels: {{{labels}}}}}\nstatus:\n  nodeInfo: {{architecture: '{info_arch}', operatingSystem: linux, bootID: '', containerRuntimeVersion: '', kernelVersion: '', kubeProxyVersion: '', kubeletVersion: '', machineID: '', osImage: '', systemUUID: ''}}"
        ))
        .unwrap()
    }

    #[test]
    fn node_platforms_come_from_the_arch_labels() {
        let nodes = [
            node(
                "master",
                "kubernetes.io/arch: arm64, kubernetes.io/os: linux",
                "arm64",
            ),
            node("agent", "kubernetes.io/arch: arm64", "arm64"),
            node("agent-2", "", "amd64"),
            node("unknown", "", ""),
        ];
        let platforms = node_platforms(&nodes);
        assert_eq!(
            platforms,
            NodePlatforms::from([
                ("linux/amd64".into(), vec!["agent-2".into()]),
                ("linux/arm64".into(), vec!["master".into(), "agent".into()]),
            ])
        );
    }

    #[test]
    fn an_image_lacking_a_node_platform_is_refused_naming_both() {
        let nodes = NodePlatforms::from([(
            "linux/arm64".to_string(),
            vec!["master".to_string(), "agent".to_string()],
        )]);
        let mut amd64 = image("api-gateway", None);
        amd64.platforms = vec!["linux/amd64".into()];
        let err = check_platforms(std::slice::from_ref(&amd64), &nodes)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("docker.io/student/api-gateway:abc is built for linux/amd64, but node master, agent runs linux/arm64"),
            "{err}"
        );
        assert!(err.contains("--platform linux/arm64"), "{err}");
        let mut both = amd64.clone();
        both.platforms.push("linux/arm64".into());
        check_platforms(&[both], &nodes).unwrap();
        // Nothing known of the image (not built now, never pushed): not refused.
        check_platforms(&[image("api-gateway", None)], &nodes).unwrap();
    }

    #[test]
    fn platform_flags_are_checked() {
        let given = [
            "linux/amd64,linux/arm64".to_string(),
            "linux/arm/v7".into(),
            "linux/amd64".into(),
        ];
        assert_eq!(
            parse_platforms(&given).unwrap(),
            ["linux/amd64", "linux/arm64", "linux/arm/v7"]
        );
        for bad in ["arm64", "linux/", "Linux/AMD64", "linux/amd64/v2/x"] {
            let err = parse_platforms(&[bad.to_string()]).unwrap_err();
            assert_eq!(
                crate::error::exit_code(&err),
                crate::error::exit::USAGE,
                "{bad}"
            );
            assert!(err.to_string().contains("linux/arm64"), "{err}");
        }
    }

    #[test]
    fn a_builder_of_one_platform_is_refused_a_multi_platform_build() {
        let docker = Builder {
            driver: "docker".into(),
            multi_platform: false,
        };
        let both = ["linux/amd64".to_string(), "linux/arm64".to_string()];
        let err = check_builder(Some(&docker), &both).unwrap_err();
        assert_eq!(
            crate::error::exit_code(&err),
            crate::error::exit::HOST_NOT_READY
        );
        let text = err.to_string();
        assert!(
            text.contains("linux/amd64 and linux/arm64 at once")
                && text.contains("docker driver")
                && text.contains("docker buildx create")
                && text.contains("containerd-snapshotter"),
            "{text}"
        );
        check_builder(Some(&docker), &both[..1]).unwrap();
        let container = Builder {
            driver: "docker-container".into(),
            multi_platform: true,
        };
        check_builder(Some(&container), &both).unwrap();
        check_builder(None, &both).unwrap();
    }
}
