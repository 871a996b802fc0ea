//! A project directory for the `deploy` and `plan` tests: a copy of the
//! repository's manifests (changed as a test needs), an `orchestrator.toml`
//! that deploys into a namespace of the test's own, and the built binary run
//! in it with `HOME` inside the project.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::kube_sim::TestNamespace;

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The `[registry]` of a student with a Docker Hub account.
pub const STUDENT: &str = "namespace = \"student\"";

/// A project directory whose configuration deploys into its own namespace.
pub struct Project {
    dir: tempfile::TempDir,
    pub namespace: TestNamespace,
    pub manifests: PathBuf,
}

impl Project {
    /// A namespace named `prefix-...`, `registry` as the `[registry]` table's
    /// body, and a copy of the repository's manifests changed by `edit`
    /// (file name, text) → text.
    pub fn new(prefix: &str, registry: &str, edit: impl Fn(&str, String) -> String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Deleted with the project: kube-sim's two nodes have room for only a few stacks.
        let namespace = TestNamespace::new(
            prefix,
            &std::env::var("KUBE_SIM_KUBECONFIG").unwrap_or_default(),
        );
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        for entry in std::fs::read_dir(Path::new(REPO).join("manifests")).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let text = edit(&name, std::fs::read_to_string(entry.path()).unwrap());
            std::fs::write(manifests.join(&name), text).unwrap();
        }
        let config = format!(
            "[registry]\n{registry}\n[deploy]\nnamespace = \"{}\"\ndockerfiles = \"{REPO}/dockerfiles\"\ntimeout_secs = 60\n",
            namespace.name
        );
        std::fs::write(dir.path().join("orchestrator.toml"), config).unwrap();
        Project {
            dir,
            namespace,
            manifests,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// The project's file `name`; empty when it does not exist.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.file(name)).unwrap_or_default()
    }

    /// Writes the repository's manifest `name` into the project again, changed by `edit`.
    pub fn rewrite(&self, name: &str, edit: impl Fn(String) -> String) {
        let text = std::fs::read_to_string(Path::new(REPO).join("manifests").join(name)).unwrap();
        std::fs::write(self.manifests.join(name), edit(text)).unwrap();
    }

    /// Logged in to Docker Hub, as far as the binary can tell (HOME is the project).
    pub fn log_in_to_docker_hub(&self) {
        std::fs::create_dir_all(self.file(".docker")).unwrap();
        std::fs::write(
            self.file(".docker/config.json"),
            r#"{"auths": {"https://index.docker.io/v1/": {}}}"#,
        )
        .unwrap();
    }

    /// The binary with `args`, to run in the project with PATH `path`; HOME
    /// is the project, and the test's KUBECONFIG, DOCKERHUB_USERNAME and
    /// DOCKER_CONFIG do not reach it.
    pub fn command(&self, path: impl AsRef<OsStr>, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_orchestrator"));
        command
            .args(args)
            .current_dir(self.path())
            .env("PATH", path)
            .env("HOME", self.path())
            .env_remove("KUBECONFIG")
            .env_remove("DOCKERHUB_USERNAME")
            .env_remove("DOCKER_CONFIG");
        command
    }

    /// Runs the binary in the project with `args`, PATH set to `path`.
    pub fn run_with_path(&self, path: impl AsRef<OsStr>, args: &[&str]) -> Output {
        self.command(path, args).output().unwrap()
    }

    /// Runs the binary with `args`, the PATH of the tests.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_path(std::env::var("PATH").unwrap(), args)
    }

    /// `deploy` of the manifests alone (images neither built nor pushed) on
    /// `kubeconfig`, with `extra` arguments.
    pub fn deploy(&self, kubeconfig: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "deploy",
            "--skip-build",
            "--skip-push",
            "--kubeconfig",
            kubeconfig,
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// [`Project::deploy`], which must succeed; its output's text.
    #[track_caller]
    pub fn deployed(&self, kubeconfig: &str, extra: &[&str]) -> String {
        let output = self.deploy(kubeconfig, extra);
        let out = text(&output);
        assert!(output.status.success(), "{out}");
        out
    }
}

/// The output's text: stdout, then stderr.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `text` with `from` replaced by `to`; `from` must be there.
pub fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} is not in the manifest");
    text.replace(from, to)
}

/// An `edit` for [`Project::new`] that changes the manifest `file` alone, by `change`.
pub fn in_file<'a>(
    file: &'a str,
    change: impl Fn(String) -> String + 'a,
) -> impl Fn(&str, String) -> String + 'a {
    move |name: &str, text: String| {
        if name == file { change(text) } else { text }
    }
}
