#!/usr/bin/env bash
# Static checks of the cluster files: shellcheck on every tracked shell script and
# `vagrant validate` on the Vagrantfile. Run from the repository root by .ci/run.
#
# No VirtualBox or libvirt here, so the Vagrantfile is validated twice over:
# - with --ignore-provider, for the default settings and for two agents: the
#   machines, networks and provisioners;
# - with the VirtualBox provider's own checks, against a stand-in VBoxManage that
#   only answers `--version` (all that validation asks it).
# Validation reads the Vagrantfile only: no box is downloaded, no VM touched. The
# token the Vagrantfile creates when none exists, Vagrant's home and its machine
# data all go to a temp dir that is removed at the end.
set -euo pipefail

missing=()
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v vagrant >/dev/null || missing+=(vagrant)
if ((${#missing[@]})); then
  echo "static: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mapfile -t scripts < <({ git ls-files '*.sh'; echo orchestrator.sh; } | sort -u)
echo "static: shellcheck on ${#scripts[@]} scripts"
shellcheck "${scripts[@]}"

# The defaults are what is checked, whatever this shell has set.
unset "${!ORCH_@}" VAGRANT_DEFAULT_PROVIDER
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/bin"
cat >"$scratch/bin/VBoxManage" <<'STUB'
#!/bin/sh
[ "$1" = --version ] && echo 7.0.14r161095
STUB
chmod +x "$scratch/bin/VBoxManage"

# validate WHAT [VAR=value...] [-- vagrant validate options]
validate() {
  local what=$1 vars=()
  shift
  while (($#)) && [[ $1 != -- ]]; do vars+=("$1"); shift; done
  (($#)) && shift
  echo "static: vagrant validate, $what"
  env "${vars[@]}" ORCH_TOKEN_FILE="$scratch/token" VAGRANT_HOME="$scratch/home" \
    VAGRANT_DOTFILE_PATH="$scratch/dotfile" VAGRANT_CHECKPOINT_DISABLE=1 \
    vagrant validate "$@"
}
validate "default settings" -- --ignore-provider
validate "two agents" ORCH_AGENTS=2 -- --ignore-provider
# With the host's K3s release in the cache beside the token, the Vagrantfile uploads it.
k3s=$(sed -n 's/^k3s_version = "\(.*\)"$/\1/p' orchestrator.toml)
[ -n "$k3s" ] || { echo "static: no k3s_version in orchestrator.toml" >&2; exit 1; }
mkdir -p "$scratch/cache/k3s/$k3s"
touch "$scratch/cache/k3s/$k3s/"{k3s,install.sh}
validate "a cached K3s release" -- --ignore-provider
validate "VirtualBox provider settings" PATH="$scratch/bin:$PATH" VAGRANT_DEFAULT_PROVIDER=virtualbox
echo "static: ok"
