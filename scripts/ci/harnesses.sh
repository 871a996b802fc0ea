#!/usr/bin/env bash
# Sets up the harnesses the bash tiers run on, filling their caches under
# ~/.cache: on a fresh machine that is ~20 min of downloads and Go builds
# (docker-sim's packages and base images, node-sim's kubelet and kube-proxy,
# vm-sim's packages and Debian box); with warm caches, seconds. Each harness's
# own scripts are idempotent; this one adds what they leave to their caller.
#
#   scripts/ci/harnesses.sh docker-sim|node-sim|vm-sim...   (as root)
#
# The tiers call it for the harnesses they use (containers.sh: docker-sim
# node-sim; vm.sh: vm-sim). .ci/run also starts it in the background while the
# tests against kube-sim run, which mostly wait, so the tiers find it done.
# It leaves docker-sim's daemons and vm-sim's libvirtd running (their tiers
# tear them down). Every harness needs kube-sim's build (../shared/kube-sim/build.sh).
# Functions called as a step's command look unreachable to shellcheck.
# shellcheck disable=SC2317
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
SHARED=$(cd "$ROOT/../shared" && pwd) || exit 1
LOGS=${HARNESS_LOGS:-/tmp/orchestrator-harness-logs}
TIER=harnesses
# shellcheck source=scripts/ci/lib.sh
. "$ROOT/scripts/ci/lib.sh"
[ "$(id -u)" = 0 ] || die "run as root (the harnesses need network namespaces)"
mkdir -p "$LOGS"
# A step's time limit: a fresh machine's Go builds and downloads take minutes.
STEP_LIMIT=${HARNESS_STEP_LIMIT:-2400}

# node-sim's setup.sh, run again over its cache, renames its conntrack wrapper
# over the real binary it wraps (`mv conntrack conntrack.bin`), which then execs
# itself forever: kube-proxy hangs on its first conntrack call and no ClusterIP
# Service works. Leave it no wrapper to rename (it writes a new one), and have
# it unpack the package again when the binary is already lost.
node_sim_setup() {
  local nsim=$SHARED/node-sim sbin
  # node-sim's cluster DNS.
  command -v dnsmasq >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dnsmasq-base; } ||
    return 1
  # shellcheck source=/dev/null
  sbin=$(. "$nsim/lib.sh" && echo "$NODE_SIM_ROOT/usr/sbin")
  if [ -e "$sbin/conntrack.bin" ]; then
    if [ "$(head -c 2 "$sbin/conntrack.bin")" = '#!' ]; then
      rm -f "$sbin/../../.unpacked"
    else
      rm -f "$sbin/conntrack"
    fi
  fi
  "$nsim/setup.sh" && [ "$(head -c 4 "$sbin/conntrack.bin" | tail -c 3)" = ELF ]
}

vm_sim_box() {
  # build-box.sh's debootstrap needs its package cache dir (vm-sim does not create it).
  mkdir -p "${VM_SIM_CACHE:-$HOME/.cache/vm-sim}/debs" && "$SHARED/vm-sim/build-box.sh"
}

timed kube-sim-build "$SHARED/kube-sim/build.sh"
for harness in "$@"; do
  case $harness in
    docker-sim) timed docker-sim-setup "$SHARED/docker-sim/setup.sh" ;;
    node-sim) timed node-sim-setup node_sim_setup ;;
    vm-sim)
      timed vm-sim-setup-host "$SHARED/vm-sim/setup-host.sh"
      timed vm-sim-box vm_sim_box
      ;;
    *) die "unknown harness '$harness' (docker-sim, node-sim or vm-sim)" ;;
  esac
done
