#!/bin/sh
# Builds the stack's three apps, and the HEALTHCHECK probe, for TARGETARCH
# (set by `docker buildx build --platform`) on whatever CPU the build stage runs:
# the build stage is FROM --platform=$BUILDPLATFORM, so rustc runs natively and
# a cross linker does the rest — never rustc under QEMU, which takes tens of
# minutes. Writes $OUT/<app> for each app and $OUT/healthcheck (OUT defaults to /out).
#
# Every app image runs this same step, with the same cache mounts held
# `sharing=locked`: `deploy` builds the images concurrently, the first build to
# take the lock compiles the workspace's apps once, in one cargo invocation (one
# feature resolution, so the dependency tree is compiled once, not once per
# app), and the builds waiting for the lock find everything fresh.
# Usage (in a Dockerfile's build stage): dockerfiles/cross-build.sh
set -eu

apps="inventory-app billing-app api-gateway"
out=${OUT:-/out}
case "${TARGETARCH:?TARGETARCH is set by docker buildx}" in
  amd64) target=x86_64-unknown-linux-gnu gnu=x86-64-linux-gnu ;;
  arm64) target=aarch64-unknown-linux-gnu gnu=aarch64-linux-gnu ;;
  *)
    echo "cross-build.sh: no cross toolchain for $TARGETARCH (amd64 and arm64 are supported)" >&2
    exit 1
    ;;
esac

if [ "$(dpkg --print-architecture)" = "$TARGETARCH" ]; then
  linker=gcc # the image's own
else
  linker=$(echo "$gnu" | sed 's/^x86-64/x86_64/')-gcc
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "gcc-$gnu" "libc6-dev-$TARGETARCH-cross" >/dev/null
fi
rustup target add "$target"

# Cargo's and the cc crate's names for the target's linker and C compiler.
triple=$(echo "$target" | tr 'a-z-' 'A-Z_')
export "CARGO_TARGET_${triple}_LINKER=$linker"
export "CC_$(echo "$target" | tr '-' '_')=$linker"

packages=$(for app in $apps; do printf -- '-p %s ' "$app"; done)
# shellcheck disable=SC2086 # one word per -p and package name
cargo build --release --locked $packages --target "$target"
mkdir -p "$out"
for app in $apps; do
  cp "target/$target/release/$app" "$out/"
done
rustc --edition 2021 -C opt-level=s -C strip=symbols -C panic=abort \
  --target "$target" -C "linker=$linker" \
  -o "$out/healthcheck" dockerfiles/healthcheck.rs
