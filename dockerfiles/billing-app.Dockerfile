# syntax=docker/dockerfile:1
# Built from the repository root: docker build -f dockerfiles/billing-app.Dockerfile .
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
COPY . .
# The same build CI runs (scripts/ci/services.sh); the caches only speed up rebuilds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p billing-app \
    && cp target/release/billing-app /usr/local/bin/billing-app

# Same Debian release as the build stage, so the binary finds its glibc.
FROM debian:12.11-slim
COPY --from=build /usr/local/bin/billing-app /usr/local/bin/billing-app
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/billing-app"]
