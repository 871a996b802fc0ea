#!/usr/bin/env bash
# Deploy's wall time on kube-sim, against the plain-kubectl baseline: `kubectl
# apply` of the same manifests, then `kubectl rollout status` of each workload.
# Prints figures; asserts nothing. Needs kube-sim running (../shared/kube-sim/up.sh).
#
#   scripts/bench-deploy.sh [RUNS]        (default 3; KUBE_SIM_KUBECONFIG overrides the kubeconfig)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kubeconfig=${KUBE_SIM_KUBECONFIG:-/tmp/kube-sim/kubeconfig}
runs=${1:-3}
kubectl=(kubectl --kubeconfig "$kubeconfig")
"${kubectl[@]}" get --raw /readyz >/dev/null || { echo "kube-sim is not running: ../shared/kube-sim/up.sh" >&2; exit 1; }

cargo build --release -q --bin orchestrator --manifest-path "$root/Cargo.toml"
bin=${CARGO_TARGET_DIR:-$root/target}/release/orchestrator
work=$(mktemp -d)
namespaces=()
cleanup() {
  for ns in "${namespaces[@]}"; do "${kubectl[@]}" delete namespace "$ns" --wait=false >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f\n", b - a}'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

workloads=$(grep -l -E '^kind: (Deployment|StatefulSet)' "$root"/manifests/*.yaml | xargs -n1 basename | sed 's/\.yaml$//')
for run in $(seq "$runs"); do
  # orchestrator: fresh deploy, then a no-op re-deploy
  ns=bench-orch-$run-$$
  namespaces+=("$ns")
  mkdir -p "$work/$ns"
  printf '[registry]\nnamespace = "bench"\n[deploy]\nnamespace = "%s"\nmanifests = "%s/manifests"\ndockerfiles = "%s/dockerfiles"\n' \
    "$ns" "$root" "$root" >"$work/$ns/orchestrator.toml"
  t=$(now)
  (cd "$work/$ns" && "$bin" -q deploy --skip-build --skip-push --kubeconfig "$kubeconfig" >/dev/null)
  since "$t" >>"$work/fresh"
  t=$(now)
  (cd "$work/$ns" && "$bin" -q deploy --skip-build --skip-push --kubeconfig "$kubeconfig" >/dev/null)
  since "$t" >>"$work/noop"

  # baseline: the same objects with kubectl, everything at once, then rollout status
  ns=bench-kubectl-$run-$$
  namespaces+=("$ns")
  t=$(now)
  "${kubectl[@]}" create namespace "$ns" >/dev/null
  for secret in inventory-db:INVENTORY_DB billing-db:BILLING_DB rabbitmq:RABBITMQ; do
    "${kubectl[@]}" -n "$ns" create secret generic "${secret%%:*}-secret" \
      --from-literal="${secret##*:}_USER=bench" --from-literal="${secret##*:}_PASSWORD=bench" >/dev/null
  done
  files=()
  for f in "$root"/manifests/*.yaml; do
    case $(basename "$f") in namespace.yaml|kustomization.yaml) ;; *) files+=(-f "$f") ;; esac
  done
  "${kubectl[@]}" -n "$ns" apply "${files[@]}" >/dev/null
  for w in $workloads; do
    kind=$(grep -m1 -E '^kind: (Deployment|StatefulSet)' "$root/manifests/$w.yaml" | cut -d' ' -f2 | tr '[:upper:]' '[:lower:]')
    "${kubectl[@]}" -n "$ns" rollout status "$kind/$w" --timeout=120s >/dev/null
  done
  since "$t" >>"$work/baseline"
done

fresh=$(median <"$work/fresh"); noop=$(median <"$work/noop"); base=$(median <"$work/baseline")
echo "deploy on kube-sim, median of $runs run(s), seconds:"
printf '  %-44s %6s   (runs: %s)\n' "orchestrator deploy, fresh" "$fresh" "$(paste -sd' ' "$work/fresh")"
printf '  %-44s %6s   (runs: %s)\n' "orchestrator deploy, no-op re-deploy" "$noop" "$(paste -sd' ' "$work/noop")"
printf '  %-44s %6s   (runs: %s)\n' "kubectl apply + rollout status (baseline)" "$base" "$(paste -sd' ' "$work/baseline")"
awk -v f="$fresh" -v b="$base" 'BEGIN {printf "  fresh / baseline = %.2f (target <= 1.2); no-op re-deploy target <= 1 s\n", f / b}'
