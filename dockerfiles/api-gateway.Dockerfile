# syntax=docker/dockerfile:1
# Built from the repository root by `orchestrator deploy`, for the nodes' platforms:
#   docker buildx build --platform linux/amd64,linux/arm64 -f dockerfiles/api-gateway.Dockerfile .
# The build stage runs on the build machine's own CPU and cross-compiles
# (dockerfiles/cross-build.sh); only the runtime stage is of the target platform.
FROM --platform=$BUILDPLATFORM rust:1.95.0-slim-bookworm AS build
ARG TARGETARCH
WORKDIR /src
COPY . .
# The same step in every app image: it builds the three apps at once, and the
# caches, held `locked`, let one concurrent build compile while the others wait
# and then find the work done (cross-build.sh says why).
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    dockerfiles/cross-build.sh

# glibc and libgcc of the build stage's Debian release, no shell, no package
# manager: a base of 24 MB instead of debian-slim's 76 MB (uncompressed; README).
# It runs as the uid the manifests ask for, not root.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/api-gateway /out/healthcheck /usr/local/bin/
USER 10001:10001
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "APIGATEWAY_PORT", "3000"]
ENTRYPOINT ["/usr/local/bin/api-gateway"]
