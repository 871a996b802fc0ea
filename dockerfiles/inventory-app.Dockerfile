# syntax=docker/dockerfile:1
# Built from the repository root: docker build -f dockerfiles/inventory-app.Dockerfile .
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
COPY . .
# The same build CI runs (scripts/ci/services.sh); the caches only speed up rebuilds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p inventory-app \
    && cp target/release/inventory-app /usr/local/bin/inventory-app

# Same Debian release as the build stage, so the binary finds its glibc.
FROM debian:12.11-slim
COPY --from=build /usr/local/bin/inventory-app /usr/local/bin/inventory-app
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/inventory-app"]
