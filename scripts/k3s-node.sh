#!/usr/bin/env bash
# Installs K3s on a cluster VM, as the server (the master) or as an agent that
# joins it:  k3s-node.sh server | agent
# Run as root by Vagrant's shell provisioner, which passes (see the Vagrantfile):
#   INSTALL_K3S_VERSION  pinned K3s release, e.g. v1.31.6+k3s1
#   K3S_TOKEN            cluster join token generated on the host (never printed)
#   NODE_NAME, NODE_IP   this machine's name and private-network address
#   MASTER_IP            agents: the K3s server's private-network address
#   MASTER_WAIT_SECONDS  agents: how long to wait for the server's API (default 300)
#
# The orchestrator provisions the master and the agents at the same time, so an
# agent first waits for the master's API, with a deadline. Safe to re-run: when
# the pinned version already runs with the same settings it says so and changes
# nothing. One line per phase, so the orchestrator's log of `vagrant provision`
# stays readable; the installer's own output goes to a log file in the VM and is
# shown only when it fails.
set -euo pipefail

ROLE=k3s-${1:-}
SERVICE=k3s
readonly STATE_DIR=/var/lib/orchestrator
readonly INSTALL_LOG=/var/log/orchestrator-k3s-install.log
readonly API_READY_SECONDS=180

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
    [[ "$(/usr/local/bin/k3s --version 2>/dev/null)" == "k3s version $INSTALL_K3S_VERSION "* ]] &&
    systemctl is-active --quiet "$SERVICE"
}

# Runs the official installer (https://get.k3s.io) the way K3s documents it: it
# reads INSTALL_K3S_VERSION and K3S_TOKEN from the environment (K3S_TOKEN goes to
# the service's root-only env file) and its arguments become the service's
# command line.
run_installer() {
  local installer
  installer=$(mktemp)
  say "downloading the K3s installer"
  if ! curl -fsSL --retry 5 --retry-delay 2 --connect-timeout 10 -o "$installer" https://get.k3s.io; then
    rm -f "$installer"
    die "could not download https://get.k3s.io; check that this VM reaches the internet"
  fi
  say "installing K3s $INSTALL_K3S_VERSION (log: $INSTALL_LOG)"
  install -m 0600 /dev/null "$INSTALL_LOG"
  if ! sh "$installer" "$@" >>"$INSTALL_LOG" 2>&1; then
    rm -f "$installer"
    tail -n 20 "$INSTALL_LOG" >&2
    die "the K3s installer failed; full log in $INSTALL_LOG, service log: journalctl -u $SERVICE"
  fi
  rm -f "$installer"
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
  local args=(server --node-name "$NODE_NAME" --node-ip "$NODE_IP" --flannel-iface "$1"
    --tls-san "$NODE_IP" --write-kubeconfig-mode 0644)
  local settings
  settings=$(settings_of "${args[*]}")
  if already_provisioned "$settings"; then
    say "K3s $INSTALL_K3S_VERSION already running with these settings; nothing to do"
    return
  fi

  run_installer "${args[@]}"

  say "waiting for the API server (up to ${API_READY_SECONDS}s)"
  local deadline=$((SECONDS + API_READY_SECONDS))
  until [[ -s /etc/rancher/k3s/k3s.yaml ]] &&
    /usr/local/bin/k3s kubectl get --raw /readyz >/dev/null 2>&1; do
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
  run_installer "${args[@]}"
  systemctl is-active --quiet "$SERVICE" ||
    die "the $SERVICE service is not running after the install; see journalctl -u $SERVICE (a wrong token shows there)"
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

  say "node $NODE_NAME, address $NODE_IP, K3s $INSTALL_K3S_VERSION"
  local iface
  iface=$(private_iface)
  say "private network interface: $iface"
  "provision_${ROLE#k3s-}" "$iface"
}

# Sourcing the file (tests) defines the functions without running anything.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
