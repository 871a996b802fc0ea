//! The pinned K3s release, downloaded once on the host and handed to the VMs.
//!
//! `create` keeps the release's binary for the host's CPU and the install script
//! in `.orchestrator/cache/k3s/VERSION/` (`destroy` keeps it). The binary is
//! checked against the release's published `sha256sum-ARCH.txt`, the script
//! against the digest recorded when it was fetched, on every use: a corrupt or
//! truncated file is fetched again, and a download lands under its final name
//! only once it is complete and verified. The Vagrantfile uploads the directory
//! to every VM, whose provisioning then installs with `INSTALL_K3S_SKIP_DOWNLOAD`:
//! a re-create downloads nothing, on the host or in the VMs.
//!
//! Air-gapped hosts can seed the directory by hand: `k3s` (the binary for the
//! host's CPU), `sha256sum-ARCH.txt` from the same release, `install.sh`, and
//! `install.sh.sha256` holding `sha256sum install.sh`'s line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::config::ClusterConfig;
use crate::reporter::Reporter;
use crate::state::State;

/// The binary's name inside the cache, whatever the CPU (what the VMs install).
const BINARY: &str = "k3s";
const INSTALLER: &str = "install.sh";

/// Where a release is fetched from and kept.
pub struct K3sRelease {
    version: String,
    release_url: String,
    installer_url: String,
    dir: PathBuf,
}

/// What `ensure` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Everything was in the cache and verified: nothing was downloaded.
    Cached,
    /// These files were downloaded (and verified).
    Downloaded(Vec<&'static str>),
}

impl K3sRelease {
    pub fn new(cluster: &ClusterConfig, state: &State) -> Self {
        K3sRelease {
            version: cluster.k3s_version.clone(),
            release_url: cluster.k3s_release_url.trim_end_matches('/').to_string(),
            installer_url: cluster.k3s_installer_url.clone(),
            dir: cache_dir(state, &cluster.k3s_version),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes the cache hold the verified release, downloading only what is
    /// missing or does not verify. Progress goes to `reporter` under `id`.
    pub async fn ensure(&self, reporter: &dyn Reporter, id: &str) -> anyhow::Result<Outcome> {
        let (arch, asset) = host_asset()?;
        let sums = self.dir.join(format!("sha256sum-{arch}.txt"));
        let binary = self.dir.join(BINARY);
        let installer = self.dir.join(INSTALLER);
        let installer_digest = self.dir.join(format!("{INSTALLER}.sha256"));

        let binary_ok = read_sum(&sums, asset).is_some_and(|want| digest_of(&binary) == Some(want));
        let installer_ok = read_sum(&installer_digest, INSTALLER)
            .is_some_and(|want| digest_of(&installer) == Some(want));
        if binary_ok && installer_ok {
            return Ok(Outcome::Cached);
        }

        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .build()?;
        let mut downloaded = Vec::new();
        if !binary_ok {
            let version = self.version.replace('+', "%2B");
            let sums_url = format!("{}/{version}/sha256sum-{arch}.txt", self.release_url);
            let listing = download(&client, &sums_url, &sums, 0o644, reporter, id).await?;
            let Some(want) = parse_sum(&std::fs::read_to_string(&listing.partial)?, asset) else {
                listing.discard();
                anyhow::bail!(
                    "{sums_url} lists no sha256 sum for {asset}; is {} a K3s release?",
                    self.version
                );
            };
            listing.keep(&sums)?;
            let url = format!("{}/{version}/{asset}", self.release_url);
            let got = download(&client, &url, &binary, 0o755, reporter, id).await?;
            if got.digest != want {
                let digest = got.discard();
                anyhow::bail!(
                    "the download of {url} is corrupt: its sha256 is {digest}, but {sums_url} says {want}; \
                     run the command again to fetch it again"
                );
            }
            got.keep(&binary)?;
            downloaded.push(BINARY);
        }
        if !installer_ok {
            let url = &self.installer_url;
            let got = download(&client, url, &installer, 0o755, reporter, id).await?;
            if first_bytes(&got.partial, 2)? != b"#!" {
                got.discard();
                anyhow::bail!(
                    "{url} did not answer with a shell script; check cluster.k3s_installer_url"
                );
            }
            let line = format!("{}  {INSTALLER}\n", got.digest);
            got.keep(&installer)?;
            std::fs::write(&installer_digest, line)
                .with_context(|| format!("cannot write {}", installer_digest.display()))?;
            downloaded.push(INSTALLER);
        }
        Ok(Outcome::Downloaded(downloaded))
    }
}

/// The cache directory of `version`; the Vagrantfile derives the same path
/// from the token file's directory.
pub fn cache_dir(state: &State, version: &str) -> PathBuf {
    state.dir().join("cache").join("k3s").join(version)
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Cached => write!(f, "cached, verified"),
            Outcome::Downloaded(files) => write!(f, "downloaded {}, verified", files.join(" and ")),
        }
    }
}

/// The release's name for the host's CPU (the VMs run the host's): the
/// architecture of its sums file and the binary's asset name.
fn host_asset() -> anyhow::Result<(&'static str, &'static str)> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(("amd64", "k3s")),
        "aarch64" => Ok(("arm64", "k3s-arm64")),
        other => anyhow::bail!("K3s publishes no binary for this host's CPU ({other})"),
    }
}

/// A downloaded file, complete, beside its final name until it is kept.
struct Download {
    partial: PathBuf,
    digest: String,
}

impl Download {
    fn keep(self, path: &Path) -> anyhow::Result<()> {
        std::fs::rename(&self.partial, path)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Deletes the file; returns its digest.
    fn discard(self) -> String {
        let _ = std::fs::remove_file(&self.partial);
        self.digest
    }
}

/// GETs `url` into a temporary file beside `path` (mode `mode`), hashing it on
/// the way and reporting the bytes received. A transfer that ends early is an
/// error (the HTTP client checks the body's length) and leaves no file behind.
async fn download(
    client: &reqwest::Client,
    url: &str,
    path: &Path,
    mode: u32,
    reporter: &dyn Reporter,
    id: &str,
) -> anyhow::Result<Download> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let failed = || {
        format!(
            "cannot download {url}; check the host's internet connection, or seed {} by hand (see the README)",
            dir.display()
        )
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let partial = path.with_file_name(format!(".{name}.partial"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    reporter.progress(id, &format!("downloading {url}"));
    let result = async {
        let mut response = client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(failed)?;
        let total = response.content_length();
        let (mut hasher, mut received, mut reported) = (Sha256::new(), 0usize, 0usize);
        while let Some(chunk) = response.chunk().await.with_context(failed)? {
            hasher.update(&chunk);
            file.write_all(&chunk)
                .with_context(|| format!("cannot write {}", partial.display()))?;
            received += chunk.len();
            // A line per 8 MiB is enough to show it moves.
            if received - reported >= 8 << 20 {
                reported = received;
                let of = total.map_or(String::new(), |t| format!(" of {} MiB", t >> 20));
                reporter.progress(id, &format!("{url}: {} MiB{of}", received >> 20));
            }
        }
        file.sync_all()
            .with_context(|| format!("cannot write {}", partial.display()))?;
        anyhow::Ok(hex(&hasher.finalize()))
    }
    .await;
    match result {
        Ok(digest) => Ok(Download { partial, digest }),
        Err(err) => {
            let _ = std::fs::remove_file(&partial);
            Err(err)
        }
    }
}

fn first_bytes(path: &Path, n: usize) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(bytes.into_iter().take(n).collect())
}

/// The sum for `name` in a `sha256sum` listing (`HASH  NAME` lines).
fn parse_sum(listing: &str, name: &str) -> Option<String> {
    listing.lines().find_map(|line| {
        let (hash, file) = line.split_once(char::is_whitespace)?;
        let file = file.trim_start().trim_start_matches('*');
        let valid = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        (file == name && valid).then(|| hash.to_ascii_lowercase())
    })
}

fn read_sum(path: &Path, name: &str) -> Option<String> {
    parse_sum(&std::fs::read_to_string(path).ok()?, name)
}

fn digest_of(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).ok()?;
    Some(hex(&hasher.finalize()))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "7a2f8b1e0c9d6e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f";

    #[test]
    fn a_sums_listing_gives_the_asset_s_hash() {
        let listing = format!(
            "{}  k3s-arm64\n{HASH}  k3s\n{}  k3s-airgap-images-amd64.tar\n",
            "0".repeat(64),
            "1".repeat(64)
        );
        assert_eq!(parse_sum(&listing, "k3s").as_deref(), Some(HASH));
        assert_eq!(parse_sum(&listing, "k3s-arm64"), Some("0".repeat(64)));
        assert_eq!(parse_sum(&listing, "k3s-s390x"), None);
    }

    #[test]
    fn a_truncated_sums_listing_gives_no_hash() {
        assert_eq!(parse_sum(&format!("{}  k3s\n", &HASH[..40]), "k3s"), None);
        assert_eq!(parse_sum("", "k3s"), None);
    }
}
