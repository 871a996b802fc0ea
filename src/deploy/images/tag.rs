//! The images' tag: the identity of the sources they are built from, so
//! that an unchanged source gets the same tag (and `--skip-build` finds the
//! image built for it) and a changed one never reuses an older build's.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::process::{Command, Runner, Stdout};

/// The sources' identity: `COMMIT` in a clean git checkout, `COMMIT-dirty-HASH`
/// with uncommitted changes (HASH names them: the diff and the untracked
/// files, so `--skip-build` after further edits never takes an older dirty
/// build for this one), else `src-HASH` of every file outside build output
/// and local state. The manifests are not what the images are built from:
/// editing them does not change the tag (and so does not restart every pod).
pub async fn source_tag(
    project_dir: &Path,
    manifests: &Path,
    runner: &Runner,
) -> anyhow::Result<String> {
    let git = |step: &'static str, args: &[&str]| {
        let command = Command::new("git")
            .arg("-C")
            .arg(project_dir.display().to_string())
            .args(args.iter().copied());
        runner.run(step, command, Stdout::Capture)
    };
    if let Ok(commit) = git("git commit", &["rev-parse", "--short=12", "HEAD"]).await {
        let outside_manifests = format!(":(exclude){}", manifests.display());
        let sources = ["--", ".", outside_manifests.as_str()];
        let diff = git(
            "git diff",
            &[&["diff", "HEAD", "--binary", "--no-ext-diff"][..], &sources].concat(),
        )
        .await?;
        let untracked = git(
            "git ls-files",
            &[
                &["ls-files", "--others", "--exclude-standard"][..],
                &sources,
            ]
            .concat(),
        )
        .await?;
        let commit = commit.trim();
        if diff.is_empty() && untracked.trim().is_empty() {
            return Ok(commit.to_string());
        }
        let root = project_dir.to_path_buf();
        let hash = tokio::task::spawn_blocking(move || {
            let mut hasher = Sha256::new();
            hasher.update(diff.as_bytes());
            for file in untracked.lines().filter(|l| !l.is_empty()) {
                hasher.update(file.as_bytes());
                // A file gone since it was listed counts as empty.
                hasher.update(std::fs::read(root.join(file)).unwrap_or_default());
            }
            format!("{:x}", hasher.finalize())
        })
        .await?;
        return Ok(format!("{commit}-dirty-{}", &hash[..12]));
    }
    let (root, manifests) = (project_dir.to_path_buf(), manifests.to_path_buf());
    let hash = tokio::task::spawn_blocking(move || hash_tree(&root, &manifests)).await??;
    Ok(format!("src-{}", &hash[..12]))
}

const NOT_SOURCES: &[&str] = &["target", ".git", ".orchestrator", ".vagrant", ".env"];

fn hash_tree(root: &Path, skip: &Path) -> anyhow::Result<String> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if NOT_SOURCES.iter().any(|n| name == *n) || entry.path() == skip {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.strip_prefix(root)?.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&file)?);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dirty_tag_names_the_uncommitted_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let git = |args: &[&str]| {
            let status = std::process::Command::new("git")
                .arg("-C")
                .arg(root)
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .output()
                .unwrap();
            assert!(status.status.success(), "git {args:?}: {status:?}");
        };
        git(&["init", "-q"]);
        std::fs::write(root.join("a.rs"), "one").unwrap();
        std::fs::write(root.join(".gitignore"), ".orchestrator/\n").unwrap();
        std::fs::create_dir(root.join("manifests")).unwrap();
        std::fs::write(root.join("manifests/x.yaml"), "kind: A").unwrap();
        git(&["add", "."]);
        git(&["commit", "-qm", "first"]);
        let runner = Runner::new(root.join(".orchestrator/logs"));
        let manifests = root.join("manifests");
        let tag = || source_tag(root, &manifests, &runner);
        let clean = tag().await.unwrap();
        assert_eq!(clean.len(), 12, "{clean}");
        // Manifests are not sources.
        std::fs::write(root.join("manifests/x.yaml"), "kind: B").unwrap();
        assert_eq!(tag().await.unwrap(), clean);

        std::fs::write(root.join("a.rs"), "two").unwrap();
        let edited = tag().await.unwrap();
        assert!(edited.starts_with(&format!("{clean}-dirty-")), "{edited}");
        assert_eq!(
            tag().await.unwrap(),
            edited,
            "the same changes, the same tag"
        );
        std::fs::write(root.join("a.rs"), "three").unwrap();
        let edited_again = tag().await.unwrap();
        assert_ne!(edited_again, edited);
        std::fs::write(root.join("new.rs"), "x").unwrap();
        let with_new_file = tag().await.unwrap();
        assert_ne!(with_new_file, edited_again);
        std::fs::write(root.join("new.rs"), "y").unwrap();
        assert_ne!(
            tag().await.unwrap(),
            with_new_file,
            "an untracked file's content counts"
        );
    }

    #[test]
    fn content_hash_ignores_build_output_and_manifests() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.rs"), "x").unwrap();
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        let first = hash_tree(dir.path(), &manifests).unwrap();
        std::fs::create_dir(dir.path().join("target")).unwrap();
        std::fs::write(dir.path().join("target/out"), "y").unwrap();
        std::fs::write(manifests.join("a.yaml"), "kind: A").unwrap();
        assert_eq!(hash_tree(dir.path(), &manifests).unwrap(), first);
        std::fs::write(dir.path().join("a.rs"), "z").unwrap();
        assert_ne!(hash_tree(dir.path(), &manifests).unwrap(), first);
    }
}
