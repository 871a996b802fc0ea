# syntax=docker/dockerfile:1
# Built from the repository root: docker build -f dockerfiles/api-gateway.Dockerfile .
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
COPY . .
# The same build CI runs (scripts/ci/services.sh); the caches only speed up rebuilds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p api-gateway \
    && cp target/release/api-gateway /usr/local/bin/api-gateway

# Same Debian release as the build stage, so the binary finds its glibc.
FROM debian:12.11-slim
COPY --from=build /usr/local/bin/api-gateway /usr/local/bin/api-gateway
USER 10001:10001
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/api-gateway"]
