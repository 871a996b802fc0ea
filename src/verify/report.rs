//! The audit on paper: the checklist `verify` prints, and the evidence bundle
//! `--report FILE.md` writes (`--json` prints the [`Audit`] itself).

use std::fmt::Write;

use super::{Audit, Check, Section, Status};

/// "12 passed, 1 failed, 9 skipped in 4.2s".
pub fn summary(audit: &Audit) -> String {
    format!(
        "{} passed, {} failed, {} skipped in {:.1}s",
        audit.count(Status::Passed),
        audit.count(Status::Failed),
        audit.count(Status::Skipped),
        audit.seconds
    )
}

/// The plain mark of a status; the binary colours it.
pub fn mark(status: Status) -> &'static str {
    match status {
        Status::Passed => "✓",
        Status::Failed => "✗",
        Status::Skipped => "–",
    }
}

/// The checklist, by section: each check's mark, name and time, its evidence,
/// then why it failed (and what to do) or why it was skipped. `mark` renders
/// a status's mark (in colour, on a terminal).
pub fn checklist(audit: &Audit, mark: &dyn Fn(Status) -> String) -> String {
    let mut out = String::new();
    for (section, checks) in sections(audit) {
        let _ = writeln!(out, "{}", section.title());
        for check in checks {
            let skipped = if check.status == Status::Skipped {
                " (skipped)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  {} {}{skipped}  {:.1}s",
                mark(check.status),
                check.name,
                check.seconds
            );
            for line in &check.evidence {
                let _ = writeln!(out, "      {line}");
            }
            for line in &check.reason {
                let _ = writeln!(out, "      → {line}");
            }
        }
    }
    let _ = writeln!(out, "\n{}", summary(audit));
    out
}

/// The evidence bundle as Markdown.
pub fn markdown(audit: &Audit) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# orchestrator verify: evidence report\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let rows = [
        ("result", summary(audit)),
        ("tool", audit.tool.clone()),
        ("started", audit.started_at.clone()),
        ("cluster", audit.cluster.clone()),
        ("Kubernetes", audit.cluster_version.clone()),
        ("namespace", audit.namespace.clone()),
        (
            "gateway",
            audit.gateway.clone().unwrap_or_else(|| "(none)".into()),
        ),
    ];
    for (name, value) in rows {
        let _ = writeln!(out, "| {name} | {} |", value.replace('|', "\\|"));
    }
    let _ = writeln!(out, "\n## Images\n\nDeployed:\n");
    list(&mut out, &audit.images);
    let _ = writeln!(out, "\nRunning (as the kubelets report them):\n");
    list(&mut out, &audit.running);
    let _ = writeln!(out, "\n## Manifests\n");
    list(&mut out, &audit.manifests);
    let _ = writeln!(out, "\n## Checks");
    for (section, checks) in sections(audit) {
        let _ = writeln!(out, "\n### {}", section.title());
        for check in checks {
            let _ = writeln!(
                out,
                "\n#### {} {} ({}, {:.2}s)\n",
                mark(check.status),
                check.name,
                status_word(check.status),
                check.seconds
            );
            if !check.evidence.is_empty() {
                let _ = writeln!(
                    out,
                    "Evidence:\n\n```\n{}\n```\n",
                    check.evidence.join("\n")
                );
            }
            if !check.reason.is_empty() {
                let label = if check.status == Status::Skipped {
                    "Why"
                } else {
                    "Problem"
                };
                let _ = writeln!(out, "{label}:\n");
                list(&mut out, &check.reason);
            }
        }
    }
    out
}

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Passed => "passed",
        Status::Failed => "failed",
        Status::Skipped => "skipped",
    }
}

fn list(out: &mut String, lines: &[String]) {
    if lines.is_empty() {
        let _ = writeln!(out, "- (none)");
    }
    for line in lines {
        let _ = writeln!(out, "- `{line}`");
    }
}

/// The checks grouped by section, in the order they ran.
fn sections(audit: &Audit) -> Vec<(Section, Vec<&Check>)> {
    let mut grouped: Vec<(Section, Vec<&Check>)> = Vec::new();
    for check in &audit.checks {
        match grouped.last_mut() {
            Some((section, checks)) if *section == check.section => checks.push(check),
            _ => grouped.push((check.section, vec![check])),
        }
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit() -> Audit {
        Audit {
            tool: "orchestrator 0.1.0".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            cluster: "context orchestrator in ~/.kube/config (https://192.168.56.10:6443/)".into(),
            cluster_version: "v1.31.6+k3s1".into(),
            namespace: "orchestrator".into(),
            gateway: None,
            images: vec!["docker.io/student/api-gateway:abc@sha256:01".into()],
            running: vec![
                "api-gateway-5d9/api-gateway: docker.io/student/api-gateway@sha256:01".into(),
            ],
            manifests: vec!["api-gateway.yaml  sha256:ab".into()],
            checks: vec![
                Check::passed(Section::Cluster, "nodes", vec!["Node/master: Ready".into()]),
                Check::failed(
                    Section::Objects,
                    "autoscalers",
                    vec!["HPA".into()],
                    vec!["maxReplicas 5".into(), "fix it".into()],
                ),
                Check::skipped(Section::Api, "POST", "no gateway"),
            ],
            seconds: 1.3,
        }
    }

    /// Word for word: a change shows as a snapshot diff to review (`cargo insta review`).
    #[test]
    fn checklist_shows_marks_evidence_and_reasons() {
        insta::assert_snapshot!(checklist(&audit(), &|s| mark(s).to_string()));
    }

    #[test]
    fn markdown_has_the_bundle() {
        let text = markdown(&audit());
        assert!(
            text.contains("| result | 1 passed, 1 failed, 1 skipped in 1.3s |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| cluster | context orchestrator in ~/.kube/config (https://192.168.56.10:6443/) |"
            ),
            "{text}"
        );
        assert!(
            text.contains("Running (as the kubelets report them):\n\n- `api-gateway-5d9/api-gateway: docker.io/student/api-gateway@sha256:01`"),
            "{text}"
        );
        assert!(
            text.contains("- `docker.io/student/api-gateway:abc@sha256:01`"),
            "{text}"
        );
        assert!(text.contains("#### ✗ autoscalers (failed, 0.00s)\n\nEvidence:\n\n```\nHPA\n```\n\nProblem:\n\n- `maxReplicas 5`"), "{text}");
        assert!(
            text.contains("#### – POST (skipped, 0.00s)\n\nWhy:\n\n- `no gateway`"),
            "{text}"
        );
    }
}
