#!/usr/bin/env bash
# Installs K3s on a cluster VM, as the server (the master) or as an agent that
# joins it:  k3s-node.sh server | agent
# Run as root by Vagrant's shell provisioner, which passes (see the Vagrantfile):
#   INSTALL_K3S_VERSION  pinned K3s release, e.g. v1.36.4+k3s1
#   K3S_TOKEN            cluster join token generated on the host (never printed)
#   NODE_NAME, NODE_IP   this machine's name and private-network address
#   MASTER_IP            agents: the K3s server's private-network address
#   MASTER_WAIT_SECONDS  agents: how long to wait for the server's API (default 300)
#   K3S_START_SECONDS    how long the K3s service may take to start (default 300)
#   K3S_RELEASE_DIR      optional: a directory holding the pinned release the host
#                        downloaded and verified (`k3s` and `install.sh`); without
#                        it the VM downloads both from the internet
#
# The orchestrator provisions the master and the agents at the same time, so an
# agent first waits for the master's API, with a deadline. The service is
# started without waiting on systemd (K3s's unit has TimeoutStartSec=0: an agent
# with a wrong token would block `systemctl start` forever) and watched with a
# deadline instead; on failure its journal is printed. Safe to re-run: when
# the pinned version already runs with the same settings it says so and changes
# nothing. One line per phase, so the orchestrator's log of `vagrant provision`
# stays readable; the installer's own output goes to a log file in the VM and is
# shown only when it fails.
set -euo pipefail

ROLE=k3s-${1:-}
SERVICE=k3s
start_seconds=300
readonly API_READY_SECONDS=180
# Where things go in the VM; the script's tests point them into a scratch dir.
readonly STATE_DIR=${STATE_DIR:-/var/lib/orchestrator}
readonly INSTALL_LOG=${INSTALL_LOG:-/var/log/orchestrator-k3s-install.log}
readonly K3S_BIN=${K3S_BIN:-/usr/local/bin/k3s}
readonly NODE_PASSWORD_FILE=${NODE_PASSWORD_FILE:-/etc/rancher/node/password}
readonly UDEV_RULES_DIR=${UDEV_RULES_DIR:-/etc/udev/rules.d}
readonly OS_RELEASE=${OS_RELEASE:-/etc/os-release}
# Journal lines of a K3s service that will never start by waiting longer.
readonly FATAL_JOURNAL='token is not valid|Node password rejected|failed to validate token|level=fatal'

say() { printf '%s: %s\n' "$ROLE" "$*"; }
die() { printf '%s: error: %s\n' "$ROLE" "$*" >&2; exit 1; }

# Prints the interface that carries the IPv4 address $1, reading `ip -o -4 addr`
# lines ("3: eth1    inet 192.168.56.10/24 brd ...") on stdin.
iface_for_ip() {
  awk -v ip="$1" '$3 == "inet" { split($4, addr, "/"); if (addr[1] == ip) { sub(/@.*/, "", $2); print $2; exit } }'
}

# The private network is configured by Vagrant before provisioning, but give a
# slow boot a moment before calling it missing.
private_iface() {
  local iface deadline=$((SECONDS + 60))
  while :; do
    iface=$(ip -o -4 addr show | iface_for_ip "$NODE_IP")
    if [[ -n $iface ]]; then
      printf '%s\n' "$iface"
      return
    fi
    if ((SECONDS >= deadline)); then
      die "no network interface has the address $NODE_IP; check the private network of this VM (ip -o -4 addr: $(ip -o -4 addr show | awk '{printf "%s=%s ", $2, $4}'))"
    fi
    sleep 2
  done
}

# True when the pinned K3s runs with exactly the settings in $1.
already_provisioned() {
  [[ -f $STATE_DIR/$ROLE.settings && "$(<"$STATE_DIR/$ROLE.settings")" == "$1" ]] &&
    [[ "$("$K3S_BIN" --version 2>/dev/null)" == "k3s version $INSTALL_K3S_VERSION "* ]] &&
    systemctl is-active --quiet "$SERVICE"
}

# Runs the official installer (https://get.k3s.io) the way K3s documents it: it
# reads INSTALL_K3S_VERSION and K3S_TOKEN from the environment (K3S_TOKEN goes to
# the service's root-only env file) and its arguments become the service's
# command line. It installs and enables the service but does not start it
# (INSTALL_K3S_SKIP_START): start_service does, with a deadline. With
# K3S_RELEASE_DIR the host's verified copy is used and nothing is downloaded.
run_installer() {
  local installer
  if [[ -n ${K3S_RELEASE_DIR:-} ]]; then
    [[ -s $K3S_RELEASE_DIR/k3s && -s $K3S_RELEASE_DIR/install.sh ]] ||
      die "K3S_RELEASE_DIR=$K3S_RELEASE_DIR lacks k3s or install.sh; run \`orchestrator create\` again to upload the release"
    say "using the host's copy of the release (no download)"
    install -m 0755 "$K3S_RELEASE_DIR/k3s" "$K3S_BIN"
    installer=$K3S_RELEASE_DIR/install.sh
    export INSTALL_K3S_SKIP_DOWNLOAD=true
  else
    installer=$(mktemp)
    say "downloading the K3s installer"
    if ! curl -fsSL --retry 5 --retry-delay 2 --connect-timeout 10 -o "$installer" https://get.k3s.io; then
      rm -f "$installer"
      die "could not download https://get.k3s.io; check that this VM reaches the internet"
    fi
  fi
  say "installing K3s $INSTALL_K3S_VERSION (log: $INSTALL_LOG)"
  install -m 0600 /dev/null "$INSTALL_LOG"
  local status=0
  INSTALL_K3S_SKIP_START=true sh "$installer" "$@" >>"$INSTALL_LOG" 2>&1 || status=$?
  [[ -n ${K3S_RELEASE_DIR:-} ]] || rm -f "$installer"
  if ((status != 0)); then
    tail -n 20 "$INSTALL_LOG" >&2
    die "the K3s installer failed; full log in $INSTALL_LOG, service log: journalctl -u $SERVICE"
  fi
}

# (Re)starts $SERVICE without blocking on systemd and waits until it is active.
# Gives up, printing the service's last journal lines, after $1 seconds, or as
# soon as the journal shows a fatal error or the service has failed 3 times.
start_service() {
  local deadline=$((SECONDS + $1)) since state restarts before
  since=$(date '+%Y-%m-%d %H:%M:%S')
  # systemd keeps counting restarts across a manual restart: count only this start's.
  before=$(systemctl show -p NRestarts --value "$SERVICE" 2>/dev/null) || before=0
  say "starting the $SERVICE service (up to $1s)"
  systemctl restart --no-block "$SERVICE"
  while :; do
    state=$(systemctl is-active "$SERVICE" 2>/dev/null) || true
    [[ $state == active ]] && return
    restarts=$(systemctl show -p NRestarts --value "$SERVICE" 2>/dev/null) || restarts=0
    restarts=$((${restarts:-0} - ${before:-0}))
    if ((SECONDS >= deadline)) || [[ $state == failed ]] || ((restarts >= 3)) ||
      journalctl -u "$SERVICE" --since "$since" --no-pager -o cat 2>/dev/null | grep -Eq "$FATAL_JOURNAL"; then
      printf '%s: the last lines of journalctl -u %s:\n' "$ROLE" "$SERVICE" >&2
      journalctl -u "$SERVICE" --since "$since" --no-pager -o cat -n 15 2>/dev/null | sed 's/^/  | /' >&2 || true
      die "the $SERVICE service did not start (state: ${state:-unknown}, restarts: ${restarts:-0}, after $((SECONDS - deadline + $1))s); a wrong token or a rejected node password shows above; repair the cause, then re-run the provisioning (vagrant provision $NODE_NAME)"
    fi
    sleep 2
  done
}

# K3s identifies a node by the password in $NODE_PASSWORD_FILE, which the server
# records on the first join. A re-created VM would generate a new one and be
# rejected under its old name, so the password is derived from the cluster token
# and the node name: the same machine always presents the same password.
ensure_node_password() {
  [[ -s $NODE_PASSWORD_FILE ]] && return
  install -d -m 0700 "$(dirname "$NODE_PASSWORD_FILE")"
  (umask 077 && printf 'orchestrator node password %s %s' "$NODE_NAME" "$K3S_TOKEN" |
    sha256sum | cut -c1-32 >"$NODE_PASSWORD_FILE")
}

# Ubuntu 24.04's kernel corrupts the checksums of VXLAN packets that flannel's
# device offloads, so pods on different nodes cannot reach each other. Turn the
# offload off whenever flannel.1 appears (a udev rule), and now if it exists.
flannel_checksum_workaround() {
  local guest
  # shellcheck source=/dev/null
  guest=$(. "$OS_RELEASE" && printf '%s %s' "${ID:-}" "${VERSION_ID:-}")
  [[ $guest == "ubuntu 24.04" ]] || return 0
  local ethtool
  ethtool=$(command -v ethtool) || {
    say "warning: ethtool is missing; cannot turn off flannel's VXLAN checksum offload (apt-get install ethtool)"
    return 0
  }
  install -d "$UDEV_RULES_DIR"
  printf '%s\n' "# orchestrator: flannel VXLAN checksum offload is broken on Ubuntu 24.04 kernels" \
    "ACTION==\"add\", SUBSYSTEM==\"net\", KERNEL==\"flannel.1\", RUN+=\"$ethtool -K flannel.1 tx-checksum-ip-generic off\"" \
    >"$UDEV_RULES_DIR/90-flannel-checksum.rules"
  if ip link show flannel.1 >/dev/null 2>&1; then
    "$ethtool" -K flannel.1 tx-checksum-ip-generic off >/dev/null
  fi
  say "flannel VXLAN checksum offload off (Ubuntu 24.04 workaround)"
}

# Waits until the server answers on https://$MASTER_IP:6443/ping (K3s answers
# "pong" there without credentials), or gives up after $1 seconds.
wait_for_master() {
  local url="https://$MASTER_IP:6443/ping" deadline=$((SECONDS + $1))
  say "waiting for the K3s server at $url (up to $1s)"
  until curl -fks --connect-timeout 3 --max-time 5 "$url" >/dev/null; do
    if ((SECONDS >= deadline)); then
      die "the K3s server at $url did not answer within $1s; check that the master VM is up and provisioned (vagrant status; vagrant provision master), that this VM reaches $MASTER_IP on the private network (ping $MASTER_IP), and the server's log on the master (sudo journalctl -u k3s)"
    fi
    sleep 3
  done
  say "the K3s server answers"
}

# The server: install, then wait until its API answers so the kubeconfig exists.
provision_server() {
  # No Traefik: nothing of the stack uses an ingress, and it would hold the
  # nodes' ports 80/443 and ~100 MB of a 2 GiB VM.
  local args=(server --node-name "$NODE_NAME" --node-ip "$NODE_IP" --flannel-iface "$1"
    --tls-san "$NODE_IP" --write-kubeconfig-mode 0644 --disable traefik)
  local settings
  settings=$(settings_of "${args[*]}")
  if already_provisioned "$settings"; then
    say "K3s $INSTALL_K3S_VERSION already running with these settings; nothing to do"
    return
  fi

  ensure_node_password
  run_installer "${args[@]}"
  start_service "$start_seconds"

  say "waiting for the API server (up to ${API_READY_SECONDS}s)"
  local deadline=$((SECONDS + API_READY_SECONDS))
  until [[ -s /etc/rancher/k3s/k3s.yaml ]] &&
    "$K3S_BIN" kubectl get --raw /readyz >/dev/null 2>&1; do
    ((SECONDS < deadline)) ||
      die "the API server did not become ready within ${API_READY_SECONDS}s; see journalctl -u $SERVICE"
    sleep 2
  done
  record "$settings"
  say "K3s server ready at https://$NODE_IP:6443"
}

# An agent: wait for the server, then install and join it.
provision_agent() {
  : "${MASTER_IP:?MASTER_IP is not set}"
  local wait_seconds=${MASTER_WAIT_SECONDS:-300}
  [[ $wait_seconds =~ ^[1-9][0-9]*$ ]] || die "MASTER_WAIT_SECONDS must be a positive number of seconds, got '$wait_seconds'"
  local args=(agent --node-name "$NODE_NAME" --node-ip "$NODE_IP" --flannel-iface "$1")
  export K3S_URL="https://$MASTER_IP:6443"
  local settings
  settings=$(settings_of "server=$K3S_URL ${args[*]}")
  if already_provisioned "$settings"; then
    say "K3s $INSTALL_K3S_VERSION agent already running with these settings; nothing to do"
    return
  fi

  wait_for_master "$wait_seconds"
  ensure_node_password
  run_installer "${args[@]}"
  start_service "$start_seconds"
  record "$settings"
  say "K3s agent started; node $NODE_NAME is joining $K3S_URL"
}

# What a re-run compares; the token enters only as a digest, so a new token re-provisions.
settings_of() {
  printf 'version=%s args=%s token=%s\n' "$INSTALL_K3S_VERSION" "$1" \
    "$(printf '%s' "$K3S_TOKEN" | sha256sum | cut -d' ' -f1)"
}

record() {
  install -d -m 0700 "$STATE_DIR"
  (umask 077 && printf '%s\n' "$1" >"$STATE_DIR/$ROLE.settings")
}

main() {
  case $ROLE in
    k3s-server) ;;
    k3s-agent) SERVICE=k3s-agent ;;
    *) die "usage: k3s-node.sh server|agent" ;;
  esac
  : "${INSTALL_K3S_VERSION:?INSTALL_K3S_VERSION is not set}" "${K3S_TOKEN:?K3S_TOKEN is not set}"
  : "${NODE_NAME:?NODE_NAME is not set}" "${NODE_IP:?NODE_IP is not set}"
  command -v curl >/dev/null || die "curl is missing in this VM; install it (apt-get install curl) and re-run"

  start_seconds=${K3S_START_SECONDS:-300}
  [[ $start_seconds =~ ^[1-9][0-9]*$ ]] || die "K3S_START_SECONDS must be a positive number of seconds, got '$start_seconds'"

  say "node $NODE_NAME, address $NODE_IP, K3s $INSTALL_K3S_VERSION"
  local iface
  iface=$(private_iface)
  say "private network interface: $iface"
  flannel_checksum_workaround
  "provision_${ROLE#k3s-}" "$iface"
}

# Sourcing the file (tests) defines the functions without running anything.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
