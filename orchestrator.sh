#!/usr/bin/env bash
# The exercise's entry point (`./orchestrator.sh create|start|stop`, and every
# other command of the CLI): builds the release binary when the sources changed,
# using cargo's own up-to-date check (quiet and quick when nothing did), then runs
# it with all the arguments, from the caller's current directory.
set -euo pipefail

# The repository is where this file really is, also when it is run via a symlink.
self=${BASH_SOURCE[0]}
while [[ -L $self ]]; do
  link=$(readlink -- "$self")
  [[ $link == /* ]] || link=$(dirname -- "$self")/$link
  self=$link
done
root=$(cd -- "$(dirname -- "$self")" && pwd -P)
(cd "$root" && cargo build --release --locked -q --bin orchestrator)
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir=$root/$target_dir
exec "$target_dir/release/orchestrator" "$@"
