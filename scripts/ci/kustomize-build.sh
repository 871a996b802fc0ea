#!/usr/bin/env bash
# Prints `kubectl kustomize manifests`, built from a copy of manifests/ whose
# secrets/*.env (gitignored: the user's credentials for `kubectl apply -k`)
# hold throwaway values, so CI can build it. Fails unless the kustomization's
# secretGenerator makes exactly the Secrets, with exactly the keys, that the
# manifests read (secretKeyRef) -- what `orchestrator deploy` creates.
# Usage, from the repository root: scripts/ci/kustomize-build.sh [PYTHON]
# (PYTHON: a python3 with PyYAML; default python3).
set -euo pipefail

python=${1:-python3}
copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
cp -r manifests "$copy/manifests"
rm -rf "$copy/manifests/secrets"

"$python" - "$copy/manifests" <<'PY'
import os
import secrets
import sys

import yaml

root = sys.argv[1]
with open(os.path.join(root, "kustomization.yaml")) as stream:
    kustomization = yaml.safe_load(stream)

# Secret name -> keys, from every secretKeyRef of a pod template's containers.
needed = {}
for resource in kustomization["resources"]:
    with open(os.path.join(root, resource)) as stream:
        for obj in yaml.safe_load_all(stream):
            spec = (((obj or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
            for container in spec.get("containers", []) + spec.get("initContainers", []):
                for env in container.get("env", []):
                    ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                    if ref:
                        needed.setdefault(ref["name"], set()).add(ref["key"])

generated = {g["name"]: g.get("envs", []) for g in kustomization.get("secretGenerator", [])}
problems = []
if set(generated) != set(needed):
    problems.append(f"secretGenerator makes {sorted(generated)}, the manifests read {sorted(needed)}")
for name, envs in generated.items():
    if len(envs) != 1:
        problems.append(f"secretGenerator {name}: one env file expected, found {envs}")
        continue
    path = os.path.join(root, envs[0])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as out:
        for key in sorted(needed.get(name, ())):
            # A user name as deploy makes it (INVENTORY_DB_USER -> inventory), else random.
            value = key[: -len("_USER")].removesuffix("_DB").lower() if key.endswith("_USER") else secrets.token_hex(16)
            out.write(f"{key}={value}\n")
for problem in problems:
    print(f"kustomize-build: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY

kubectl kustomize "$copy/manifests"
