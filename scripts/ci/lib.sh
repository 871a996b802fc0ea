# shellcheck shell=bash
# shellcheck disable=SC2034 # `failed` is read by the scripts that source this
# What the CI tiers written in bash share (vm.sh, containers.sh): their
# PASS/FAIL lines, which .ci/run counts, timed setup steps, checked steps, and
# the scratch copy of the checkout they work on. Source it after setting
# TIER (the lines' prefix) and LOGS (where each step's output is kept).

say() { printf '%s: %s\n' "$TIER" "$*"; }
die() {
  printf '%s: error: %s\n' "$TIER" "$*" >&2
  exit 1
}

pass() { printf 'PASS %-22s %4ss  %s\n' "$1" "$2" "$3"; }
failed=0 # the sourcing tier's exit status
fail() {
  printf 'FAIL %-22s %4ss  %s\n' "$1" "$2" "$3"
  failed=1
}

# Every step has a time limit (STEP_LIMIT seconds, default 600; set it for
# one step as `STEP_LIMIT=900 step ...`): a step that hangs (a pod stuck
# terminating, a harness that stops answering) fails alone, showing what the
# tier's `on_timeout` prints, if it defines one, and the steps after it still run.
limited() { # LOG CMD...: runs CMD, output to LOG; its status, or 124 and ran_out=1
  local log=$1 limit=${STEP_LIMIT:-600} pid sleeper
  shift
  ran_out=0
  set -m # job control: CMD gets a process group of its own, to stop all it started
  "$@" >"$log" 2>&1 &
  pid=$!
  set +m
  STEP_PGID=$pid
  sleep "$limit" &
  sleeper=$!
  wait -n "$pid" "$sleeper"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null
    (sleep 10 && kill -KILL -- "-$pid" 2>/dev/null) &
    wait "$pid"
    STEP_PGID=
    ran_out=1
    printf '\n(stopped: still running after %s s)\n' "$limit" >>"$log"
    if [ "$(type -t on_timeout)" = function ]; then on_timeout >>"$log" 2>&1; fi
    return 124
  fi
  kill "$sleeper" 2>/dev/null
  STEP_PGID=
  wait "$pid"
}
STEP_PGID=
# stop_step: the step running now, stopped with all it started (for the tiers'
# cleanup when they are interrupted: a step's group is not theirs).
stop_step() { [ -z "$STEP_PGID" ] || kill -TERM -- "-$STEP_PGID" 2>/dev/null; }

timed() { # NAME CMD...: a setup step; its output goes to a log, a failure stops the tier
  local name=$1 t=$SECONDS
  shift
  if limited "$LOGS/$name.log" "$@"; then
    printf 'PASS %-22s %4ss\n' "$name" $((SECONDS - t))
  else
    printf 'FAIL %-22s %4ss  see %s\n' "$name" $((SECONDS - t)) "$LOGS/$name.log"
    tail -n 15 "$LOGS/$name.log" | sed 's/^/     | /'
    exit 1
  fi
}

# step NAME WANT TEXT CMD...: runs CMD, times it; passes when its exit code is WANT
# (0, or `fail` for any other) and its output has every |-separated part of TEXT.
step() {
  local name=$1 want=$2 text=$3 t=$SECONDS rc=0 out part missing='' parts
  shift 3
  limited "$LOGS/$name.log" "$@" || rc=$?
  out=$(cat "$LOGS/$name.log")
  IFS='|' read -ra parts <<<"$text"
  for part in "${parts[@]}"; do grep -qF -- "$part" <<<"$out" || missing+="'$part' "; done
  if [ "$ran_out" = 1 ]; then
    fail "$name" $((SECONDS - t)) "stopped at its time limit; log $LOGS/$name.log"
  elif { [ "$want" = 0 ] && [ $rc -eq 0 ]; } || { [ "$want" = fail ] && [ $rc -ne 0 ]; } && [ -z "$missing" ]; then
    pass "$name" $((SECONDS - t)) "exit $rc${text:+, says: $text}"
    return 0
  else
    fail "$name" $((SECONDS - t)) "exit $rc (wanted $want), missing: ${missing:-nothing}; log $LOGS/$name.log"
  fi
  tail -n 12 <<<"$out" | sed 's/^/     | /'
  return 1
}

expect_equal() { # NAME GOT WANT WHAT
  if [ "$2" = "$3" ]; then pass "$1" 0 "$4: $2"; else fail "$1" 0 "$4: $2, wanted $3"; fi
}

# project_copy SOURCE DIR: the files git would commit in SOURCE (tracked and
# untracked, not ignored: no target/, no .orchestrator/), copied into DIR.
project_copy() {
  (cd "$1" && git ls-files -z --cached --others --exclude-standard |
    tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$2"
}

# cli_binary: sets BIN to the CLI as the test tier builds it. `cargo test
# --workspace` compiles it with the dev-dependencies' features (tokio's
# test-util, ...); a plain `cargo build` would compile its dependency tree
# again (~90 s on 2 cores), this is a no-op after .ci/run's tests.
cli_binary() {
  BIN=$ROOT/target/debug/orchestrator
  timed build cargo test --workspace --locked --no-run
  [ -x "$BIN" ] || die "cargo test --no-run left no $BIN"
}
