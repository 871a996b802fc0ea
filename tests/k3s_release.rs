//! The K3s release cache (`src/k3s_release.rs`) against a loopback HTTP server
//! standing in for GitHub's release downloads and get.k3s.io.

mod support;

use orchestrator::config::ClusterConfig;
use orchestrator::k3s_release::{K3sRelease, Outcome};
use orchestrator::reporter::Silent;
use orchestrator::state::State;
use support::release::{Answer, BINARIES, BINARY, INSTALLER, Server, VERSION, asset, sha256};

struct Project {
    dir: tempfile::TempDir,
    cluster: ClusterConfig,
}

impl Project {
    fn new(base: &str) -> Project {
        let cluster = ClusterConfig {
            k3s_version: VERSION.into(),
            k3s_release_url: format!("{base}/releases/"),
            k3s_installer_url: format!("{base}/install.sh"),
            ..ClusterConfig::default()
        };
        Project {
            dir: tempfile::tempdir().unwrap(),
            cluster,
        }
    }

    fn release(&self) -> K3sRelease {
        K3sRelease::new(&self.cluster, &State::new(self.dir.path()))
    }

    async fn ensure(&self) -> anyhow::Result<Outcome> {
        self.release().ensure(&Silent, "K3s release").await
    }

    fn cached(&self, name: &str) -> std::path::PathBuf {
        self.release().dir().join(name)
    }
}

#[tokio::test]
async fn the_release_is_downloaded_once_then_used_from_the_cache() {
    let (server, base) = Server::start();
    let project = Project::new(&base);

    let first = project.ensure().await.unwrap();
    assert_eq!(first, Outcome::Downloaded(vec!["k3s", "install.sh"]));
    // Where the Vagrantfile looks for it.
    let dir = project
        .dir
        .path()
        .join(".orchestrator/cache/k3s")
        .join(VERSION);
    assert_eq!(project.release().dir(), dir);
    assert_eq!(std::fs::read(dir.join("k3s")).unwrap(), BINARY);
    assert_eq!(std::fs::read(dir.join("install.sh")).unwrap(), INSTALLER);
    assert_eq!(server.take_requests().len(), 3, "sums, binary, installer");

    // A re-create (destroy keeps the cache) downloads nothing.
    assert_eq!(project.ensure().await.unwrap(), Outcome::Cached);
    assert_eq!(server.take_requests(), Vec::<String>::new());
}

#[tokio::test]
async fn a_corrupt_cached_binary_is_fetched_again() {
    let (server, base) = Server::start();
    let project = Project::new(&base);
    project.ensure().await.unwrap();
    server.take_requests();

    // Cut short on disk (as by a full disk or a copy stopped halfway).
    std::fs::write(project.cached("k3s"), &BINARY[..10]).unwrap();
    let outcome = project.ensure().await.unwrap();
    assert_eq!(outcome, Outcome::Downloaded(vec!["k3s"]));
    assert_eq!(std::fs::read(project.cached("k3s")).unwrap(), BINARY);
    let requests = server.take_requests();
    assert!(
        requests.iter().all(|p| !p.contains("install.sh")),
        "{requests:?}"
    );

    // A changed install script is noticed too.
    std::fs::write(project.cached("install.sh"), "#!/bin/sh\necho tampered\n").unwrap();
    assert_eq!(
        project.ensure().await.unwrap(),
        Outcome::Downloaded(vec!["install.sh"])
    );
    assert_eq!(
        std::fs::read(project.cached("install.sh")).unwrap(),
        INSTALLER
    );
}

#[tokio::test]
async fn a_download_that_does_not_match_the_published_sum_is_refused() {
    let (server, base) = Server::start();
    let project = Project::new(&base);
    for binary in BINARIES {
        server.answer(&asset(binary), Answer::Body(b"something else".to_vec()));
    }

    let err = format!("{:#}", project.ensure().await.unwrap_err());
    assert!(
        err.contains("is corrupt") && err.contains(&sha256(BINARY)),
        "{err}"
    );
    assert!(
        !project.cached("k3s").exists(),
        "nothing kept under the final name"
    );
    let leftovers: Vec<_> = std::fs::read_dir(project.release().dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn a_cut_transfer_is_an_error_and_the_next_run_fetches_it_again() {
    let (server, base) = Server::start();
    let project = Project::new(&base);
    for binary in BINARIES {
        let cut = Answer::Cut {
            body: BINARY[..20].to_vec(),
            length: BINARY.len(),
        };
        server.answer(&asset(binary), cut);
    }
    let err = format!("{:#}", project.ensure().await.unwrap_err());
    assert!(
        err.contains("cannot download") && err.contains("/k3s"),
        "{err}"
    );
    assert!(!project.cached("k3s").exists());

    for binary in BINARIES {
        server.answer(&asset(binary), Answer::Body(BINARY.to_vec()));
    }
    assert_eq!(
        project.ensure().await.unwrap(),
        Outcome::Downloaded(vec!["k3s", "install.sh"])
    );
    assert_eq!(std::fs::read(project.cached("k3s")).unwrap(), BINARY);
}

#[tokio::test]
async fn an_unknown_version_is_named() {
    let (_server, base) = Server::start();
    let mut project = Project::new(&base);
    project.cluster.k3s_version = "v9.9.9+k3s1".into();
    let err = format!("{:#}", project.ensure().await.unwrap_err());
    assert!(
        err.contains("cannot download") && err.contains("v9.9.9%2Bk3s1/sha256sum-"),
        "{err}"
    );
}

#[tokio::test]
async fn an_installer_url_that_serves_no_script_is_refused() {
    let (server, base) = Server::start();
    let project = Project::new(&base);
    server.answer(
        "/install.sh",
        Answer::Body(b"<html>captive portal</html>".to_vec()),
    );
    let err = format!("{:#}", project.ensure().await.unwrap_err());
    assert!(err.contains("k3s_installer_url"), "{err}");
    assert!(!project.cached("install.sh").exists());
}

/// `create`'s default release is the one a plain `vagrant up` installs and the
/// one the sample configuration shows.
#[test]
fn the_default_release_is_the_same_everywhere() {
    let default = ClusterConfig::default().k3s_version;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap();
    let vagrantfile = read("Vagrantfile");
    assert!(
        vagrantfile.contains(&format!(
            "orch_setting(\"ORCH_K3S_VERSION\", \"{default}\")"
        )),
        "the Vagrantfile's default is not {default}"
    );
    assert!(
        read("orchestrator.toml").contains(&format!("\nk3s_version = \"{default}\"\n")),
        "orchestrator.toml does not show {default}"
    );
}
