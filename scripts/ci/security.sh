#!/usr/bin/env bash
# The security baseline, run from the repository root by .ci/run:
#   1. checkov on the kustomize output of manifests/ (scripts/ci/kustomize-build.sh)
#      and on dockerfiles/, with .checkov.yaml: every skipped check is listed
#      there with its reason, every other check must pass;
#   2. detect-secrets: the tracked files scanned again against the audited
#      .secrets.baseline; any finding that is not in it, audited as a false
#      positive, fails (audit a new one with `detect-secrets audit
#      .secrets.baseline` after `detect-secrets scan --baseline .secrets.baseline`).
# hadolint runs in scripts/ci/services.sh. Installs checkov and detect-secrets
# (pinned) into a cached venv of its own.
set -euo pipefail

readonly CHECKOV_VERSION=3.3.30
readonly DETECT_SECRETS_VERSION=1.5.0

say() { echo "security: $*"; }

venv="${XDG_CACHE_HOME:-$HOME/.cache}/orchestrator-ci/security-checkov-$CHECKOV_VERSION-detect-secrets-$DETECT_SECRETS_VERSION"
if [[ ! -x $venv/bin/checkov || ! -x $venv/bin/detect-secrets ]]; then
  say "installing checkov $CHECKOV_VERSION and detect-secrets $DETECT_SECRETS_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "checkov==$CHECKOV_VERSION" "detect-secrets==$DETECT_SECRETS_VERSION"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say "checkov on the kustomize output of manifests/"
"$(dirname "$0")/kustomize-build.sh" "$venv/bin/python" >"$work/stack.yaml"
"$venv/bin/checkov" --config-file .checkov.yaml --framework kubernetes -f "$work/stack.yaml"

say "checkov on dockerfiles/"
"$venv/bin/checkov" --config-file .checkov.yaml --framework dockerfile -d dockerfiles

say "detect-secrets against .secrets.baseline"
cp .secrets.baseline "$work/baseline"
# The scan reads the copy; the original, full of hashes, is not a source file.
"$venv/bin/detect-secrets" scan --baseline "$work/baseline" --exclude-files '^\.secrets\.baseline$'
"$venv/bin/python" - "$work/baseline" <<'PY'
import json
import sys

with open(sys.argv[1]) as stream:
    results = json.load(stream)["results"]
bad = [
    f"{path}:{r['line_number']}: {r['type']} ({'audited as real' if r.get('is_secret') else 'not audited'})"
    for path, found in sorted(results.items())
    for r in found
    if r.get("is_secret") is not False
]
for line in bad:
    print(f"FAIL {line}", file=sys.stderr)
count = sum(len(found) for found in results.values())
if bad:
    sys.exit(f"security: {len(bad)} finding(s) not audited as false positives in .secrets.baseline")
print(f"security: detect-secrets: {count} finding(s), all audited as false positives")
PY
say "ok"
