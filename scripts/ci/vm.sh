#!/usr/bin/env bash
# The `vm` tier: the cluster commands on real Vagrant VMs (../shared/vm-sim:
# vagrant-libvirt with QEMU emulation, a Debian 12 box, a stand-in K3s and a
# stand-in get.k3s.io), on a scratch copy of this checkout. Each step is timed
# and checked (exit code, output, vagrant state, kubeconfig context, nodes):
#
#   create interrupted during the boot (Ctrl-C) -> create resumes, downloading
#   nothing again -> nodes Ready with fresh heartbeats -> create again changes
#   nothing -> an agent with a wrong token (fails fast with its journal, then
#   repaired) -> stop -> start -> Ready again -> start with a halted agent that
#   does not come back (times out naming it, then repaired) -> destroy --yes
#
# It sets the harness up (harnesses.sh vm-sim) and tears it down itself
# (teardown.sh) and leaves nothing running, also when a step fails or it is
# interrupted. Run as root from anywhere: scripts/ci/vm.sh
# Exit 0 when every step passed; logs stay in $VM_LOGS (default /tmp/orchestrator-vm-logs).
# Functions called through traps or as a step's command look unreachable to shellcheck.
# shellcheck disable=SC2317
set -uo pipefail
{ # bash reads a script as it runs: the braces make it read all of it first (edits cannot hit a run)
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
SIM=$(cd "$ROOT/../shared/vm-sim" && pwd) || exit 1
LOGS=${VM_LOGS:-/tmp/orchestrator-vm-logs}
BOX=orchestrator/debian12-sim
T0=$SECONDS
TIER=vm
# shellcheck source=scripts/ci/lib.sh
. "$ROOT/scripts/ci/lib.sh"
[ "$(id -u)" = 0 ] || die "run as root (the harness needs a network namespace and libvirtd)"

COPY=
cleanup() {
  trap - EXIT INT TERM
  stop_step
  if [ -n "$COPY" ] && [ -d "$COPY" ]; then
    say "cleanup: destroying the VMs of $COPY"
    (cd "$COPY" && vagrant_ destroy -f >"$LOGS/cleanup-destroy.log" 2>&1)
    cp -r "$COPY/.orchestrator/logs" "$LOGS/cli" 2>/dev/null # the CLI's own logs, for a post-mortem
    rm -rf "$COPY"
  fi
  say "cleanup: tearing the harness down"
  "$SIM/teardown.sh" >"$LOGS/teardown.log" 2>&1 || say "teardown.sh failed; see $LOGS/teardown.log"
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT TERM

rm -rf "$LOGS" && mkdir -p "$LOGS"

# --- the harness and the binary ------------------------------------------------------------
cli_binary
"$ROOT/scripts/ci/harnesses.sh" vm-sim || die "the harness could not be set up"

# The project copy: vagrant writes .vagrant/ there, the CLI .orchestrator/.
COPY=$(mktemp -d /tmp/orchestrator-vm.XXXXXX)
project_copy "$ROOT" "$COPY"
KCFG=$COPY/.kubeconfig # the user kubeconfig the CLI merges into (never ~/.kube/config)
set_key() { # KEY VALUE: a [cluster] key of the copy's orchestrator.toml (the shipped file lists them all)
  sed -i "s|^$1 = .*|$1 = $2|" "$COPY/orchestrator.toml"
  grep -qxF "$1 = $2" "$COPY/orchestrator.toml" || die "cannot set $1 in $COPY/orchestrator.toml"
}
set_key provider '"libvirt"'
set_key box "\"$BOX\""
set_key cpus 2
set_key memory_mb 2048
set_key ready_timeout_secs 300
# Inside the namespace the stand-in get.k3s.io answers on the loopback too (plain HTTP).
set_key k3s_release_url '"http://127.0.0.1/releases"'
set_key k3s_installer_url '"http://127.0.0.1/"'
VERSION=$(sed -n 's/^k3s_version = "\(.*\)"$/\1/p' "$COPY/orchestrator.toml")
say "project copy $COPY, K3s $VERSION, logs in $LOGS"

# --- helpers -------------------------------------------------------------------------------
# One libvirt network on the private address, always. vm-sim's networks.sh
# (which its run.sh calls before every command) defines the harness's own
# network when it sees no *active* network on that address, and its check
# (`virsh net-dumpxml | grep -q` under pipefail) now and then loses a race with
# SIGPIPE and sees none. vagrant-libvirt makes a network of its own on that
# address when `create` destroys both VMs to redo their first boot (the destroy
# takes the harness's network with it). Two networks on one address, and
# `vagrant up` activates whichever it lists first (lookup_network_by_ip, active
# or not): "Network is already in use by interface virbr2", the start fails.
# So before each command: the active one stays (else vagrant's, else the
# harness's), the others go; none at all, networks.sh makes the harness's.
private_network() {
  # shellcheck source=/dev/null
  (
    . "$SIM/lib.sh"
    host=${VM_SIM_PRIVATE_NET%/*} && host=${host%.*}.1
    keep='' rank=0 all=()
    for net in $(virsh_ net-list --all --name); do
      xml=$(virsh_ net-dumpxml "$net" 2>/dev/null) || continue
      grep -q "address='$host'" <<<"$xml" || continue
      all+=("$net")
      info=$(virsh_ net-info "$net" 2>/dev/null)
      if grep -Eq '^Active: +yes' <<<"$info"; then r=3; elif [ "$net" != "$VM_SIM_PRIVATE_NAME" ]; then r=2; else r=1; fi
      [ "$r" -gt "$rank" ] && keep=$net rank=$r
    done
    [ -n "$keep" ] || exec "$SIM/networks.sh"
    for net in "${all[@]}"; do
      [ "$net" = "$keep" ] || virsh_ net-undefine "$net" >/dev/null
    done
    [ "$rank" = 3 ] || virsh_ net-start "$keep" >/dev/null
  )
}
# Every command runs in the namespace as run.sh would run it.
in_ns() {
  private_network >/dev/null 2>&1 || true
  # shellcheck source=/dev/null
  (. "$SIM/lib.sh" && exec ip netns exec "$VM_SIM_NETNS" "$@")
}
orch() { (cd "$COPY" && in_ns env KUBECONFIG="$KCFG" "$BIN" "$@"); }
# vagrant as the CLI runs it (the settings it passes that matter after the boot).
vagrant_() { (cd "$COPY" && in_ns env VAGRANT_DEFAULT_PROVIDER=libvirt ORCH_BOX="$BOX" vagrant "$@"); }

states() { # the machines' vagrant states, "master=STATE agent=STATE"
  vagrant_ status --machine-readable 2>/dev/null |
    awk -F, '$3 == "state" { printf "%s%s=%s", sep, $2, $4; sep = " " }'
}
expect_states() { # NAME "master=running agent=running"
  local got
  got=$(states)
  if [ "$got" = "$2" ]; then pass "$1" 0 "vagrant: $got"; else fail "$1" 0 "vagrant: '$got', wanted '$2'"; fi
}
expect_context() { # NAME present|absent: the orchestrator context in the user kubeconfig
  local got=absent
  in_ns kubectl --kubeconfig "$KCFG" config get-contexts orchestrator >/dev/null 2>&1 && got=present
  if [ "$got" = "$2" ]; then pass "$1" 0 "context orchestrator $got in $KCFG"; else fail "$1" 0 "context orchestrator $got, wanted $2"; fi
}
# nodes_fresh NAME SINCE [SECONDS]: master and agent Ready, each with a heartbeat newer
# than SINCE (epoch seconds): a Ready stored before a halt does not count.
nodes_fresh() {
  local name=$1 since=$2 limit=${3:-180} t=$SECONDS out fresh s hb
  while :; do
    out=$(in_ns kubectl --kubeconfig "$KCFG" --context orchestrator get nodes -o \
      jsonpath='{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}{"\n"}{end}' 2>&1)
    fresh=0
    while read -r _ s hb; do
      [ "$s" = True ] && [ "$(date -d "$hb" +%s 2>/dev/null || echo 0)" -ge "$since" ] && fresh=$((fresh + 1))
    done <<<"$out"
    if [ $fresh -ge 2 ]; then
      pass "$name" $((SECONDS - t)) "master and agent Ready, heartbeats after $(date -d "@$since" +%T)"
      return 0
    fi
    if [ $((SECONDS - t)) -ge "$limit" ]; then
      fail "$name" $((SECONDS - t)) "no fresh Ready heartbeats since $(date -d "@$since" +%T): $(tr '\n' ';' <<<"$out")"
      return 1
    fi
    sleep 3
  done
}
# A step that hangs: the newest of the CLI's logs (the boot, the provisioning, the wait).
on_timeout() {
  local log
  for log in $(find "$COPY/.orchestrator/logs" -name '*.log' -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -n 2 | cut -d' ' -f2); do
    echo "== $log"
    tail -n 5 "$log"
  done
}
# What the stand-in get.k3s.io served: release files (the host's downloads) and anything the VMs asked.
releases_served() { grep -c '"GET /releases/' /run/vm-sim/fakenet.log; }
vm_requests() { grep -vc '^127\.0\.0\.1 ' /run/vm-sim/fakenet.log; }

# --- the life cycle ------------------------------------------------------------------------
served0=$(releases_served) vm0=$(vm_requests)
# The first create is interrupted during the boot (Ctrl-C reaches the whole
# process group), then resumed: the resumed create boots, provisions and
# connects the cluster, and downloads nothing the first one had fetched (the
# release is fetched before the VMs boot). One create, not two: the VMs are
# the slowest thing in CI.
t=$SECONDS
# shellcheck disable=SC2016 # $$ and "$@" are the inner shell's
(cd "$COPY" && exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$LOGS/interrupted.pgid" \
  "$SIM/run.sh" env KUBECONFIG="$KCFG" "$BIN" create) >"$LOGS/create-interrupted.log" 2>&1 &
waiter=$!
for _ in $(seq 300); do
  grep -qs "Waiting for domain to get an IP address" "$COPY"/.orchestrator/logs/boot-master*.log && break
  sleep 1
done
pgid=$(cat "$LOGS/interrupted.pgid")
kill -INT -- "-$pgid" 2>/dev/null
# It must end by itself, promptly; if not, it is killed (and the step fails).
(sleep 120 && kill -KILL -- "-$pgid" 2>/dev/null) &
watchdog=$! rc=0 t_int=$SECONDS
wait "$waiter" || rc=$?
kill "$watchdog" 2>/dev/null
[ $((SECONDS - t_int)) -lt 120 ] || rc="killed, still running 120 s after Ctrl-C"
# Its vagrant children must be gone when it returns (they hold the machines' locks,
# so "run it again" would fail); wait for stragglers, up to a minute, before resuming.
# They run in process groups of their own (the CLI stops them itself), all in the copy.
left_behind() {
  {
    pgrep -g "$pgid"
    for p in $(pgrep -f /usr/bin/vagrant); do
      [ "$(readlink "/proc/$p/cwd")" = "$COPY" ] && echo "$p"
    done
  } | sort -u
}
left=$(left_behind | wc -l) t_left=$SECONDS
while [ -n "$(left_behind)" ] && [ $((SECONDS - t_left)) -lt 60 ]; do sleep 1; done
if [ "$rc" != 0 ] && [ "${rc#killed}" = "$rc" ] && [ "$left" = 0 ]; then
  pass create-interrupted $((SECONDS - t)) "exit $rc after Ctrl-C during the boot; no process left"
else
  fail create-interrupted $((SECONDS - t)) "exit $rc; $left process(es) it started still ran when it returned (gone after $((SECONDS - t_left)) s more); log $LOGS/create-interrupted.log"
  left_behind | xargs -r kill -KILL
fi
since=$(date +%s)
STEP_LIMIT=900 step create-resumed 0 "cluster created" orch create
expect_states create-vagrant "master=running agent=running"
expect_context create-context present
nodes_fresh create-ready "$since"
expect_equal create-download "$(($(releases_served) - served0)) $(($(vm_requests) - vm0))" "2 0" \
  "release files the host downloaded over both runs (sums, k3s), requests from the VMs to get.k3s.io"

step create-again 0 "nothing changed" orch create
expect_states create-again-vagrant "master=running agent=running"

# An agent whose join fails: a token the server does not know. Its provisioning
# must fail within the start deadline, showing the service's journal; a
# provisioning with the right token repairs it.
token=$COPY/.orchestrator/token
cp -p "$token" "$token.good"
printf 'not-the-cluster-token\n' >"$token"
step join-wrong-token fail "token is not valid|k3s-agent service did not start" vagrant_ provision agent
mv "$token.good" "$token"
since=$(date +%s)
step join-repaired 0 "is joining" vagrant_ provision agent
nodes_fresh join-repaired-ready "$since"

step stop 0 "cluster stopped" orch stop
expect_states stop-vagrant "master=shutoff agent=shutoff"

since=$(date +%s)
step start 0 "cluster started" orch start
expect_states start-vagrant "master=running agent=running"
# `start` must not return before the nodes really post again (a short wait at most).
nodes_fresh start-ready "$since" 10

# A node that does not come back: the agent's K3s disabled, the agent halted.
# The master keeps running (`start` boots only what is down, and a boot is
# minutes under emulation), and the wait is short: nothing can come of it.
step agent-disable 0 "" vagrant_ ssh agent -c "sudo systemctl disable k3s-agent"
step agent-halt 0 "" vagrant_ halt agent
set_key ready_timeout_secs 45
step start-node-missing fail "agent" orch start
set_key ready_timeout_secs 300
since=$(date +%s)
step agent-enable 0 "" vagrant_ ssh agent -c "sudo systemctl enable --now k3s-agent"
nodes_fresh agent-back "$since"

step destroy 0 "cluster destroyed" orch destroy --yes
expect_states destroy-vagrant "master=not_created agent=not_created"
expect_context destroy-context absent

printf 'vm tier: %s in %s s\n' "$([ $failed = 0 ] && echo passed || echo FAILED)" $((SECONDS - T0))
exit $failed
}
