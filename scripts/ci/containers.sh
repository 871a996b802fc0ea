#!/usr/bin/env bash
# The `containers` tier: the stack's images built by a real Docker engine and
# run by a real kubelet, through the CLI's own paths, on a scratch copy of the
# project. Harnesses: ../shared/docker-sim (dockerd, buildx, a registry on
# localhost:5000), ../shared/node-sim (a one-node Kubernetes 1.20 running
# those images) and ../shared/kube-sim (an API server, simulated nodes).
#
#   images, on kube-sim:  deploy from an EMPTY build cache (the five images
#     built concurrently by buildx, pushed, digests recorded, the stack pinned
#     to REGISTRY/NAME:TAG@sha256:...) -> a one-line change in one app
#     redeployed -> deploy --skip-build reuses the recorded digests
#   the stack, on node-sim (hostPath volumes, as K3s's local-path):
#     deploy with no registry login -> every pod Ready with the manifests'
#     probes, users, read-only roots and volumes -> verify (every check it can
#     run on one node) -> logs -> RabbitMQ's memory alarm read back -> data
#     kept across pod deletes (a queued order, a movie, an order row)
#   again on `local` volumes (the kubelet applies fsGroup, as on cloud disks):
#     deploy --sideload (docker save archives imported into the node's
#     containerd as `k3s ctr images import -` would) -> Ready -> pods deleted
#     -> data kept, the Erlang cookie still 0400
#
# Run as root, with kube-sim up (KUBE_SIM_KUBECONFIG), from anywhere:
#   scripts/ci/containers.sh [PROJECT]   (PROJECT: the tree to copy, default this checkout)
# ORCHESTRATOR_BIN: the binary (default: target/debug/orchestrator, built when missing).
# CONTAINERS_PARTS: which parts to run (default "images node local"; e.g. `node`
# alone, to see an older tree's manifests on the real node).
# Exit 0 when every step passed; logs stay in $CONTAINERS_LOGS (default
# /tmp/orchestrator-containers-logs). It leaves node-sim and docker-sim torn down.
# Functions called through traps or as a step's command look unreachable to shellcheck.
# shellcheck disable=SC2317
set -uo pipefail
{ # bash reads a script as it runs: the braces make it read all of it first (edits cannot hit a run)
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
SHARED=$(cd "$ROOT/../shared" && pwd) || exit 1
DSIM=$SHARED/docker-sim
NSIM=$SHARED/node-sim
LOGS=${CONTAINERS_LOGS:-/tmp/orchestrator-containers-logs}
SOURCE=$(cd "${1:-$ROOT}" && pwd) || exit 1
T0=$SECONDS
TIER=containers
# shellcheck source=scripts/ci/lib.sh
. "$ROOT/scripts/ci/lib.sh"
[ "$(id -u)" = 0 ] || die "run as root (the harnesses need network namespaces)"
[ -n "${KUBE_SIM_KUBECONFIG:-}" ] || die "set KUBE_SIM_KUBECONFIG to a running kube-sim's kubeconfig"
export KUBE_SIM_KUBECONFIG

PARTS=" ${CONTAINERS_PARTS:-images node local} "
part() { [[ $PARTS == *" $1 "* ]]; }

COPY=
# node-sim wiped; the logs of its daemons (kubelet, containerd, ...) kept first, named
# by the label node_up wrote (steps run in subshells: a file carries it).
# shellcheck source=/dev/null
NODE_RUN=$(. "$NSIM/lib.sh" && echo "$NODE_SIM_RUN")
node_down() {
  local label
  if label=$(cat "$LOGS/node-sim.label" 2>/dev/null); then
    rm -f "$LOGS/node-sim.label"
    cp -r "$NODE_RUN/logs" "$LOGS/node-sim-$label"
  fi
  "$NSIM/teardown.sh" --wipe
}
cleanup() {
  trap - EXIT INT TERM
  stop_step
  say "cleanup: tearing the harnesses down"
  if part node || part local; then
    node_down >"$LOGS/node-sim-teardown.log" 2>&1 || say "node-sim teardown failed; see $LOGS/node-sim-teardown.log"
  fi
  "$DSIM/teardown.sh" >"$LOGS/docker-sim-teardown.log" 2>&1 || say "docker-sim teardown failed; see $LOGS/docker-sim-teardown.log"
  [ -n "$COPY" ] && rm -rf "$COPY"
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT TERM
rm -rf "$LOGS" && mkdir -p "$LOGS"

# --- the harnesses, the binary, the project copy ---------------------------------------------
cli_binary
harnesses=docker-sim
if part node || part local; then harnesses="docker-sim node-sim"; fi
# shellcheck disable=SC2086 # one word a harness
"$ROOT/scripts/ci/harnesses.sh" $harnesses || die "a harness could not be set up"

COPY=$(mktemp -d /tmp/orchestrator-containers.XXXXXX)
project_copy "$SOURCE" "$COPY"
set_key() { # SECTION KEY VALUE: a key of the copy's orchestrator.toml
  python3 - "$COPY/orchestrator.toml" "$@" <<'EOF' || die "cannot set [$1] $2 in $COPY/orchestrator.toml"
import re, sys
path, section, key, value = sys.argv[1:]
text = open(path).read()
body = re.search(r"(?ms)^\[%s\]\n(.*?)(?=^\[|\Z)" % section, text)
new, n = re.subn(r"(?m)^%s = .*$" % key, "%s = %s" % (key, value), body.group(1), count=1)
assert n == 1
open(path, "w").write(text[: body.start(1)] + new + text[body.end(1):])
EOF
}
set_key registry server '"localhost:5000"'
set_key registry namespace '"sim"'
set_key deploy timeout_secs 420
say "project copy $COPY (from $SOURCE), logs in $LOGS"

docker_() { "$DSIM/run.sh" docker "$@"; }
registry() { "$DSIM/run.sh" curl -sf "$@"; } # the registry, from inside docker-sim's namespace
# The CLI beside kube-sim (root namespace) or inside node-sim's namespace, with the engine's docker.
orch_kube_sim() { (cd "$COPY" && "$DSIM/run.sh" --no-netns "$BIN" "$@" --kubeconfig "$KUBE_SIM_KUBECONFIG"); }
orch_node() { (cd "$COPY" && PATH=$FAKE_VAGRANT:$PATH "$NSIM/run.sh" "$DSIM/run.sh" --no-netns "$BIN" "$@"); }
kubectl_node() { "$NSIM/run.sh" kubectl -n orchestrator "$@"; }
recorded() { # the digests .orchestrator/images.json records, one "REF DIGEST" per line
  python3 -c 'import json,sys; [print(r, p["digest"]) for r, p in sorted(json.load(open(sys.argv[1])).items())]' \
    "$COPY/.orchestrator/images.json"
}
live_images() { # KUBECTL...: every container image of the namespace's workloads, sorted
  "$@" get deployments,statefulsets -o jsonpath='{range .items[*]}{range .spec.template.spec.containers[*]}{.image}{"\n"}{end}{end}' | sort -u
}

# --- images, on kube-sim --------------------------------------------------------------------
if part images; then
KS_NS=containers-tier
set_key deploy namespace "\"$KS_NS\""
kubectl_ks() { kubectl --kubeconfig "$KUBE_SIM_KUBECONFIG" -n "$KS_NS" "$@"; }
kubectl_ks delete namespace "$KS_NS" --wait=true --timeout=120s >/dev/null 2>&1
# Every run starts from an empty build cache (base images stay): a student's first deploy.
timed empty-build-cache docker_ builder prune -af
# docker-sim's registry wants no credentials; kube-sim's side cannot reach it to
# find that out (it is inside docker-sim's namespace), so log in with any.
echo sim | docker_ login localhost:5000 -u sim --password-stdin >"$LOGS/login.log" 2>&1 || die "docker login failed"

STEP_LIMIT=900 step deploy-cold 0 "image inventory-app|image postgres|deployed" orch_kube_sim deploy
recorded >"$LOGS/recorded-cold.txt"
expect_equal images-recorded "$(grep -c ' sha256:' "$LOGS/recorded-cold.txt")" 5 "pushed digests recorded"
# Each recorded digest is the registry's, and the live objects name exactly it.
mismatch=
while read -r ref digest; do
  repo=${ref#localhost:5000/} tag=${repo##*:} repo=${repo%:*}
  served=$(registry -I -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json' \
    "http://127.0.0.1:5000/v2/$repo/manifests/$tag" | tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" { print $2 }')
  [ "$served" = "$digest" ] || mismatch+="$ref: recorded $digest, registry $served; "
done <"$LOGS/recorded-cold.txt"
# (with nothing recorded these would pass on empty lists: they say so instead)
[ -s "$LOGS/recorded-cold.txt" ] || mismatch="nothing recorded"
expect_equal images-in-registry "${mismatch:-none}" none "recorded digests the registry does not serve"
live_images kubectl_ks >"$LOGS/live-cold.txt"
pinned=$(awk '{ sub(/:[^:\/]*$/, "", $1); print $1 "@" $2 }' "$LOGS/recorded-cold.txt")
expect_equal images-pinned "$(cat "$LOGS/live-cold.txt")" "${pinned:-(nothing recorded)}" "live images"

# A one-line change in one app: only it compiles again; the stack rolls out.
sed -i 's/"connected to the broker"/"connected to the broker (a one-line change)"/' "$COPY/apps/api-gateway/src/publisher.rs"
grep -q 'a one-line change' "$COPY/apps/api-gateway/src/publisher.rs" || die "the one-line change did not apply"
step deploy-one-line-change 0 "image api-gateway|deployed" orch_kube_sim deploy
recorded >"$LOGS/recorded-change.txt"
live_images kubectl_ks >"$LOGS/live-change.txt"
# The gateway runs its new image; what did not change keeps its reference (no restart).
changed=$(comm -13 "$LOGS/live-cold.txt" "$LOGS/live-change.txt" | sed 's|.*/||; s|@.*||' | tr '\n' ' ')
say "images changed by the one-line change: $changed"
expect_equal images-repinned "$(grep -c '/api-gateway@' <<<"$(comm -13 "$LOGS/live-cold.txt" "$LOGS/live-change.txt")")" 1 "new api-gateway image"
expect_equal images-kept "$(grep -cE '/(postgres|rabbitmq)@' <<<"$(comm -13 "$LOGS/live-cold.txt" "$LOGS/live-change.txt")")" 0 "changed postgres/rabbitmq images"

step deploy-skip-build 0 "deployed" orch_kube_sim deploy --skip-build
expect_equal skip-build-builds "$(grep -c 'building for' "$LOGS/deploy-skip-build.log")" 0 "builds run by deploy --skip-build"
live_images kubectl_ks >"$LOGS/live-skip.txt"
before_skip=$(cat "$LOGS/live-change.txt")
expect_equal skip-build-same-images "$(cat "$LOGS/live-skip.txt")" "${before_skip:-(no live image before)}" "live images after --skip-build"
# Two platforms on Docker's default builder (docker driver): refused before any build.
step multi-platform-refused fail "linux/amd64 and linux/arm64 at once|docker buildx create" \
  orch_kube_sim deploy --platform linux/amd64,linux/arm64
expect_equal multi-platform-builds "$(grep -c 'building for' "$LOGS/multi-platform-refused.log")" 0 "builds started"
kubectl_ks delete namespace "$KS_NS" --wait=false >/dev/null 2>&1

# What each image weighs: in the engine, and pushed (its compressed layers and config).
{
  printf "| image | size (\`docker image ls\`) | pushed (compressed) |\n|---|---|---|\n"
  while read -r live; do
    digest=${live#*@} repo=${live%@*} repo=${repo#localhost:5000/}
    ref=$(grep -F " $digest" "$LOGS/recorded-change.txt" | tail -1 | cut -d' ' -f1)
    size=$(docker_ image ls --format '{{.Size}}' "$ref" | head -1)
    pushed=$(registry -H 'Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' \
      "http://127.0.0.1:5000/v2/$repo/manifests/$digest" |
      python3 -c 'import json,sys; m=json.load(sys.stdin); print(round((m["config"]["size"]+sum(l["size"] for l in m["layers"]))/1e6, 1), "MB")')
    printf '| %s | %s | %s |\n' "${repo#sim/}" "$size" "$pushed"
  done <"$LOGS/live-change.txt"
} >"$LOGS/sizes.md"
sed 's/^/    /' "$LOGS/sizes.md"
fi

# --- the stack, on a real node ----------------------------------------------------------------
set_key deploy namespace '"orchestrator"'
# `vagrant ssh NODE -c 'sudo k3s ctr images import -'`, as deploy --sideload runs it,
# done by node-sim's containerd (the same import K3s's ctr does). node-sim has one
# node for the CLI's two (master, agent): their imports of one image take turns
# (two at once into one containerd race: "image ... already exists").
FAKE_VAGRANT=$COPY/.fake-vagrant
mkdir -p "$FAKE_VAGRANT"
cat >"$FAKE_VAGRANT/vagrant" <<EOF
#!/bin/sh
# only what deploy --sideload asks: ssh NODE -c 'sudo k3s ctr images import -'
[ "\$1 \$3 \$4" = "ssh -c sudo k3s ctr images import -" ] || { echo "fake vagrant: unexpected \$*" >&2; exit 1; }
tee "\$(mktemp "$LOGS/sideload-\$2.XXXXXX.tar")" | flock "$LOGS/sideload.lock" "$NSIM/run.sh" ctr -n k8s.io images import -
EOF
chmod +x "$FAKE_VAGRANT/vagrant"

node_up() { # LABEL [ENV...]: a wiped node-sim, up
  node_down >"$LOGS/node-sim-down-$1.log" 2>&1
  echo "$1" >"$LOGS/node-sim.label"
  shift
  env "$@" "$NSIM/up.sh"
}
all_ready() { # every pod of the stack Running and Ready (6 of them)
  local out
  out=$(kubectl_node get pods --no-headers 2>&1)
  printf '%s\n' "$out"
  [ "$(grep -c . <<<"$out")" = 6 ] && ! grep -qv ' 1/1 *Running' <<<"$out"
}
curl_node() { "$NSIM/run.sh" curl -s -m 10 "$@"; }
gateway() { echo "http://10.215.0.10:$(kubectl_node get svc api-gateway -o jsonpath='{.spec.ports[0].nodePort}')"; }
wait_ready() { # POD: Ready again after a delete (within 240 s)
  for _ in $(seq 120); do
    [ "$(kubectl_node get pod "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] && return 0
    sleep 2
  done
  return 1
}

answer_with() { # TEXT URL: the node's answer from URL once it holds TEXT (or its last, after 120 s)
  local answer
  for _ in $(seq 60); do
    answer=$(curl_node "$2")
    grep -qF "$1" <<<"$answer" && break
    sleep 2
  done
  printf '%s\n' "$answer"
}

# data_survives_pod_deletes LABEL: a queued order, a movie and an order row kept
# across deletes of rabbitmq-0, inventory-db-0 and billing-db-0.
data_survives_pod_deletes() {
  local label=$1 gw t=$SECONDS title="kept-$1-$RANDOM" user=$((RANDOM + 1000)) out orders movies
  at() { echo "[$((SECONDS - t)) s] $*"; } # where it is, should it hang
  gw=$(gateway)
  at "a movie and an order through $gw"
  curl_node -X POST -H 'Content-Type: application/json' -d "{\"title\": \"$title\", \"description\": \"across a pod delete\"}" "$gw/api/movies" >/dev/null
  curl_node -X POST -H 'Content-Type: application/json' -d "{\"user_id\": \"$user\", \"number_of_items\": \"1\", \"total_amount\": \"9.99\"}" "$gw/api/billing" >/dev/null
  # One more order that only the queue holds: billing-app is stopped.
  at "billing-app stopped"
  kubectl_node scale statefulset billing-app --replicas=0 >/dev/null
  kubectl_node wait --for=delete pod/billing-app-0 --timeout=120s >/dev/null 2>&1
  out=$(curl_node -X POST -H 'Content-Type: application/json' -d "{\"user_id\": \"$((user + 1))\", \"number_of_items\": \"2\", \"total_amount\": \"1.50\"}" "$gw/api/billing")
  at "queued while billing-app was stopped: $out"
  kubectl_node delete pod rabbitmq-0 inventory-db-0 billing-db-0 --wait=true --timeout=180s ||
    { at "still terminating:" && kubectl_node get pods -o wide && return 1; }
  for pod in rabbitmq-0 inventory-db-0 billing-db-0; do
    if wait_ready "$pod"; then at "$pod Ready again"; else echo "$pod not Ready again"; fi
  done
  # Not asserted: what a client meets at once (the CI run that failed here read
  # the movie at this point and met "inventory-app unavailable").
  at "the movie at once: $(curl_node "$gw/api/movies?title=$title")"
  kubectl_node scale statefulset billing-app --replicas=1 >/dev/null
  # The apps turn Ready again a probe period or more after their databases do
  # (and the node's proxy rules follow): ask until the answer holds what it must.
  orders=$(answer_with "\"user_id\":$((user + 1))," "$gw/api/billing")
  at "billing-app back"
  movies=$(answer_with "\"title\":\"$title\"" "$gw/api/movies?title=$title")
  at "inventory-app back"
  echo "movies: $movies"
  echo "orders: $orders"
  if ! grep -q "\"title\":\"$title\"" <<<"$movies"; then
    echo "the movie is gone"
    kubectl_node get pods -o wide
    kubectl_node logs deploy/inventory-app --tail=20
    return 1
  fi
  grep -q "\"user_id\":$user," <<<"$orders" || { echo "the stored order is gone"; return 1; }
  grep -q "\"user_id\":$((user + 1))," <<<"$orders" || { echo "the queued order is gone"; return 1; }
  echo "kept across the deletes ($label, $((SECONDS - t)) s)"
}
# A step that hangs on the node: what its pods and the kubelet were doing.
on_timeout() {
  if part node || part local; then
    kubectl_node get pods -o wide --request-timeout=10s
    kubectl_node get events --sort-by=.lastTimestamp --request-timeout=10s | tail -n 8
  fi
}
cookie_mode() { kubectl_node exec rabbitmq-0 -- stat -c '%a %u:%g' /var/lib/rabbitmq/.erlang.cookie; }

# The stack on hostPath volumes (K3s's local-path), deployed with no registry login.
if part node; then
timed node-sim-up node_up hostpath
docker_ logout localhost:5000 >>"$LOGS/login.log" 2>&1
# No login: the registry answers GET /v2/ without credentials (without that rule, "not logged in").
step node-deploy 0 "deployed" orch_node deploy
step node-pods-ready 0 "rabbitmq-0|inventory-db-0|billing-db-0" all_ready
verify_json() { orch_node verify --json --gateway-url "$(gateway)" >"$LOGS/verify.json"; }
step node-verify-run fail "" verify_json
# One node: every check passes but the node count.
expect_equal node-verify "$(python3 -c '
import json, sys
audit = json.load(open(sys.argv[1]))
print(" ".join(sorted(c["name"] for c in audit["checks"] if c["status"] != "passed")) or "none")
' "$LOGS/verify.json" 2>&1)" "at least two Ready nodes: a control plane and an agent" "checks not passed"
step node-logs 0 "INFO service_common::http: listening port=8080" orch_node logs inventory-app
step node-logs-rabbitmq 0 "Server startup complete" orch_node logs rabbitmq
# RabbitMQ's memory alarm, as the running broker computed it: 256 MiB, below the 512Mi limit.
step node-rabbitmq-watermark 0 "computed to: 0.2684 gb" kubectl_node exec rabbitmq-0 -- rabbitmq-diagnostics -q status
step node-data-kept 0 "kept across the deletes" data_survives_pod_deletes hostpath
expect_equal node-cookie "$(cookie_mode)" "400 10100:10100" "Erlang cookie mode"

fi

# Again on `local` volumes, where the kubelet applies fsGroup, and with no registry: sideloaded.
if part local; then
timed node-sim-up-local node_up local NODE_SIM_PV_TYPE=local
step node-sideload 0 "imported|deployed" orch_node deploy --sideload
# What deploy streamed to each node: `docker save` archives, their tags and platform.
archives() {
  python3 - "$LOGS"/sideload-*.tar <<'EOF'
import json, sys, tarfile
found = {}
for path in sys.argv[1:]:
    node = path.rsplit("/", 1)[1].split(".")[0].removeprefix("sideload-")
    with tarfile.open(path) as archive:
        for image in json.load(archive.extractfile("manifest.json")):
            config = json.load(archive.extractfile(image["Config"]))
            for tag in image["RepoTags"]:
                found.setdefault(node, []).append(
                    "%s %s/%s" % (tag.split(":")[0], config["os"], config["architecture"]))
for node, images in sorted(found.items()):
    print(node + ": " + ", ".join(sorted(images)))
EOF
}
wanted_archives() {
  for node in agent master; do
    printf '%s: ' "$node"
    for i in api-gateway billing-app inventory-app postgres rabbitmq; do printf 'orchestrator.local/%s linux/amd64, ' "$i"; done | sed 's/, $//'
    echo
  done
}
expect_equal sideload-archives "$(archives 2>&1)" "$(wanted_archives)" "archives per node"
rm -f "$LOGS"/sideload-*.tar
step node-sideload-ready 0 "rabbitmq-0" all_ready
step node-local-data-kept 0 "kept across the deletes" data_survives_pod_deletes local
expect_equal node-local-cookie "$(cookie_mode)" "400 10100:10100" "Erlang cookie mode after the fsGroup pass"
fi

printf 'containers tier: %s in %s s\n' "$([ $failed = 0 ] && echo passed || echo FAILED)" $((SECONDS - T0))
exit $failed
}
