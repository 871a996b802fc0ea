#!/usr/bin/env bash
# Static checks of manifests/, run from the repository root by .ci/run:
#   1. `kubectl kustomize manifests` builds (scripts/ci/kustomize-build.sh: with
#      throwaway values in the gitignored secrets/*.env its secretGenerator
#      reads, whose Secrets and keys must be those the manifests read), and
#      lists every manifest file;
#   2. every document, in its file and as kustomize renders it, validates in
#      strict mode (unknown fields are errors) against the schemas of the
#      Kubernetes minor version K3s is pinned to;
#   3. the contract the deploy tool relies on: no metadata.namespace, no Secret,
#      the app.kubernetes.io labels on every object.
# Installs what it needs: kubernetes-validate (pinned, in a cached venv) and
# kubectl (Debian's kubernetes-client) when it is missing.
set -euo pipefail

# The schemas of the Kubernetes minor the default K3s release runs
# (orchestrator.toml's k3s_version, v1.36.4+k3s1 -> 1.36.0); kubernetes-validate
# 1.37.0 ships schemas for 1.25 to 1.37: move it on with the K3s pin.
KUBERNETES_VERSION=$(sed -n 's/^k3s_version = "v\([0-9]*\.[0-9]*\)\..*"$/\1.0/p' orchestrator.toml)
readonly KUBERNETES_VERSION
readonly VALIDATE_VERSION=1.37.0
readonly MANIFESTS=manifests

fail() {
    printf 'manifests: %s\n' "$*" >&2
    exit 1
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

ensure_kubectl() {
    command -v kubectl >/dev/null 2>&1 && return
    echo "manifests: kubectl missing, installing kubernetes-client"
    as_root apt-get update -qq
    as_root apt-get install -y -qq kubernetes-client
}

# Prints the path of a kubernetes-validate of the pinned version.
validator() {
    if [[ $(kubernetes-validate --version 2>/dev/null || true) == "$VALIDATE_VERSION" ]]; then
        command -v kubernetes-validate
        return
    fi
    # A venv of our own: works where the system Python refuses `pip install`.
    local venv="${XDG_CACHE_HOME:-$HOME/.cache}/orchestrator-ci/kubernetes-validate-$VALIDATE_VERSION"
    if [[ ! -x $venv/bin/kubernetes-validate ]]; then
        echo "manifests: installing kubernetes-validate $VALIDATE_VERSION into $venv" >&2
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "kubernetes-validate==$VALIDATE_VERSION" >&2
    fi
    printf '%s\n' "$venv/bin/kubernetes-validate"
}

[[ -d $MANIFESTS ]] || fail "no $MANIFESTS/ directory here ($(pwd)); run from the repository root"

ensure_kubectl
kubernetes_validate=$(validator)
python=$(dirname "$kubernetes_validate")/python3
[[ -x $python ]] || python=python3

mapfile -t files < <(find "$MANIFESTS" -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml | sort)
((${#files[@]} > 0)) || fail "no manifest files in $MANIFESTS/"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

errors=0
report() {
    printf 'FAIL %s\n' "$*" >&2
    errors=$((errors + 1))
}

# 1. kustomize build, and no file left out of it.
if ! "$(dirname "$0")/kustomize-build.sh" "$python" >"$work/built.yaml" 2>"$work/kustomize.err"; then
    cat "$work/kustomize.err" >&2
    fail "kubectl kustomize $MANIFESTS does not build"
fi
echo "ok   kubectl kustomize $MANIFESTS builds, its secretGenerator makes the Secrets the manifests read"
for file in "${files[@]}"; do
    grep -Eq "^[[:space:]]*-[[:space:]]*$(basename "$file")[[:space:]]*$" "$MANIFESTS/kustomization.yaml" ||
        report "$file: not listed in $MANIFESTS/kustomization.yaml resources"
done

# 2. Strict schema validation. A document whose kind has no schema (a typo in
# kind or apiVersion) is only a warning for kubernetes-validate: an error here.
validate() {
    local label=$1 path=$2 out
    if out=$("$kubernetes_validate" --strict --quiet -k "$KUBERNETES_VERSION" "$path" 2>&1) &&
        ! grep -q . <<<"$out"; then
        echo "ok   $label: valid for Kubernetes $KUBERNETES_VERSION (strict)"
    else
        report "$label: not valid for Kubernetes $KUBERNETES_VERSION (strict):"
        printf '%s\n' "$out" >&2
    fi
}
for file in "${files[@]}"; do
    validate "$file" "$file"
done
validate "kubectl kustomize $MANIFESTS output" "$work/built.yaml"

# 3. The contract with the deploy tool (see DESIGN.md and issue 4).
if ! "$python" - "${files[@]}" <<'EOF'; then
import sys
import yaml

problems = 0
for path in sys.argv[1:]:
    with open(path) as stream:
        documents = [d for d in yaml.safe_load_all(stream) if d is not None]
    for obj in documents:
        meta = obj.get("metadata") or {}
        what = f"{path}: {obj.get('kind')}/{meta.get('name')}"
        labels = meta.get("labels") or {}
        found = []
        if obj.get("kind") == "Secret":
            found.append("a Secret (the deploy tool creates the Secrets)")
        if "namespace" in meta:
            found.append("metadata.namespace (set at apply time instead)")
        if labels.get("app.kubernetes.io/part-of") != "orchestrator":
            found.append("no label app.kubernetes.io/part-of: orchestrator")
        if not labels.get("app.kubernetes.io/name"):
            found.append("no label app.kubernetes.io/name")
        for problem in found:
            print(f"FAIL {what}: {problem}", file=sys.stderr)
        problems += len(found)
sys.exit(1 if problems else 0)
EOF
    errors=$((errors + 1))
else
    echo "ok   labels, no namespace, no Secret in ${#files[@]} files"
fi

((errors == 0)) || fail "$errors check(s) failed"
echo "manifests: all checks passed"
