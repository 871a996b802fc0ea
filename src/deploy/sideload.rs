//! `deploy --sideload`: no registry at all. An image built into the local
//! docker is saved once to an archive and streamed into every node's
//! containerd over `vagrant ssh NODE -c 'sudo k3s ctr images import -'`
//! (K3s's `ctr` works in the `k8s.io` namespace the kubelet uses); the
//! manifests then name it with `imagePullPolicy: Never`.

use anyhow::Context;
use futures::future::try_join_all;

use super::Project;
use super::images::Image;
use crate::process::{Command, Runner, Stdout};
use crate::reporter::Reporter;
use crate::vagrant::Vagrant;

/// What each node runs to take an image archive on its standard input.
pub const IMPORT: &str = "sudo k3s ctr images import -";

/// Saves the locally built `image` and imports it into every VM of the cluster.
pub async fn import(
    image: &Image,
    project: &Project<'_>,
    runner: &Runner,
    reporter: &dyn Reporter,
    id: &str,
) -> anyhow::Result<()> {
    let archive = project
        .state
        .dir()
        .join(format!("sideload-{}.tar", image.name));
    let save = Command::new("docker")
        .args([
            "save",
            "-o",
            &archive.display().to_string(),
            &image.reference,
        ])
        .dir(project.dir);
    reporter.progress(id, "saving");
    runner
        .run(&format!("save {}", image.name), save, Stdout::Log)
        .await?;
    let machines = project.config.cluster.machines();
    reporter.progress(id, &format!("importing into {}", machines.join(", ")));
    let vagrant = Vagrant::new(project.config, project.dir, project.state, runner.clone());
    let imports = machines.iter().map(|machine| {
        let step = format!("import {} into {machine}", image.name);
        let vagrant = &vagrant;
        let archive = &archive;
        async move {
            vagrant
                .ssh_with_stdin(&step, machine, IMPORT, archive)
                .await
                .with_context(|| format!("cannot import {} into node {machine}", image.reference))
        }
    });
    let result = try_join_all(imports).await;
    // The archive is only a vehicle; the nodes keep the image.
    let _ = std::fs::remove_file(&archive);
    result.map(drop)
}
