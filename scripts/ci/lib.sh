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

timed() { # NAME CMD...: a setup step; its output goes to a log, a failure stops the tier
  local name=$1 t=$SECONDS
  shift
  if "$@" >"$LOGS/$name.log" 2>&1; then
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
  out=$("$@" 2>&1) || rc=$?
  printf '%s\n' "$out" >"$LOGS/$name.log"
  IFS='|' read -ra parts <<<"$text"
  for part in "${parts[@]}"; do grep -qF -- "$part" <<<"$out" || missing+="'$part' "; done
  if { [ "$want" = 0 ] && [ $rc -eq 0 ]; } || { [ "$want" = fail ] && [ $rc -ne 0 ]; }; then
    if [ -z "$missing" ]; then
      pass "$name" $((SECONDS - t)) "exit $rc${text:+, says: $text}"
      return 0
    fi
  fi
  fail "$name" $((SECONDS - t)) "exit $rc (wanted $want), missing: ${missing:-nothing}; log $LOGS/$name.log"
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
