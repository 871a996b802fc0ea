//! `deploy --sideload`: no registry at all. An image built into the local
//! docker is saved once to an archive and streamed into every node's
//! containerd over `vagrant ssh NODE -c 'sudo k3s ctr images import -'`
//! (K3s's `ctr` works in the `k8s.io` namespace the kubelet uses); the
//! manifests then name it with `imagePullPolicy: Never`. It runs after the
//! builds and takes the images by name and reference, so that building knows
//! nothing of how its images reach the nodes.

use anyhow::Context;
use futures::future::try_join_all;

use super::Project;
use crate::process::{Command, Runner, Stdout};
use crate::reporter::{Reporter, Task};
use crate::vagrant::Vagrant;

/// What each node runs to take an image archive on its standard input.
pub const IMPORT: &str = "sudo k3s ctr images import -";

/// The reporter's task of the imports.
const TASK: &str = "sideload";

/// An image in the local docker, to be imported into the nodes.
#[derive(Debug, Clone, Copy)]
pub struct LocalImage<'a> {
    /// The bare name (`api-gateway`): it names the archive and the steps.
    pub name: &'a str,
    /// What docker and the nodes call it (`orchestrator.local/api-gateway:TAG`).
    pub reference: &'a str,
}

/// Imports every image into every VM of the cluster, the images side by side,
/// reported as one task (nothing is reported without images). When one import
/// fails the others are dropped, which stops their processes.
pub async fn import(
    images: &[LocalImage<'_>],
    project: &Project<'_>,
    runner: &Runner,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    if images.is_empty() {
        return Ok(());
    }
    let machines = project.config.cluster.machines();
    let vagrant = Vagrant::new(project.config, project.dir, project.state, runner.clone());
    let task = Task::start(
        reporter,
        TASK,
        &format!("import into {}", machines.join(", ")),
    );
    let imports = images
        .iter()
        .map(|image| import_one(*image, &machines, &vagrant, project, runner, reporter));
    let result = try_join_all(imports).await;
    let message = match &result {
        Ok(_) => {
            let names: Vec<&str> = images.iter().map(|image| image.name).collect();
            format!("imported {}", names.join(", "))
        }
        Err(_) => "failed".into(),
    };
    task.finish(result.is_ok(), &message);
    result.map(drop)
}

/// Saves one image and imports it into every machine.
async fn import_one(
    image: LocalImage<'_>,
    machines: &[String],
    vagrant: &Vagrant,
    project: &Project<'_>,
    runner: &Runner,
    reporter: &dyn Reporter,
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
            image.reference,
        ])
        .dir(project.dir);
    reporter.progress(TASK, &format!("saving {}", image.name));
    runner
        .run(&format!("save {}", image.name), save, Stdout::Log)
        .await?;
    reporter.progress(TASK, &format!("importing {}", image.name));
    let imports = machines.iter().map(|machine| {
        let step = format!("import {} into {machine}", image.name);
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
