# The official image, pinned, so the stack's every image can live in the
# user's Docker Hub namespace. It ships pg_isready for the probes.
FROM postgres:16.9-alpine
LABEL org.opencontainers.image.description="PostgreSQL for inventory-db and billing-db"
# Its postgres user (uid 70 upstream) becomes uid/gid 10070, the uid the
# manifests run it as: no uid below 10000 is shared with the host's users,
# and initdb needs the uid it runs as to have a name (the entrypoint would
# otherwise fake one with nss_wrapper, which is not in every architecture's
# image).
RUN set -eux; \
    sed -i -E 's/^(postgres:[^:]*):[0-9]+:[0-9]+:/\1:10070:10070:/' /etc/passwd; \
    sed -i -E 's/^(postgres:[^:]*):[0-9]+:/\1:10070:/' /etc/group; \
    [ "$(id -u postgres):$(id -g postgres)" = 10070:10070 ]; \
    chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
USER 10070:10070
# For `docker run`; Kubernetes ignores it and uses the manifests' probes.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]
