# The official image, pinned, so the stack's every image can live in the
# user's Docker Hub namespace. It ships rabbitmq-diagnostics for the probes.
FROM rabbitmq:3.13.7-alpine
LABEL org.opencontainers.image.description="RabbitMQ for the billing queue"
# Its rabbitmq user (uid 100 upstream) becomes uid/gid 10100, the uid the
# manifests run it as: no uid below 10000 is shared with the host's users.
RUN set -eux; \
    sed -i -E 's/^(rabbitmq:[^:]*):[0-9]+:[0-9]+:/\1:10100:10100:/' /etc/passwd; \
    sed -i -E 's/^(rabbitmq:[^:]*):[0-9]+:/\1:10100:/' /etc/group; \
    [ "$(id -u rabbitmq):$(id -g rabbitmq)" = 10100:10100 ]; \
    chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /etc/rabbitmq
USER 10100:10100
# For `docker run`; Kubernetes ignores it and uses the manifests' probes.
HEALTHCHECK --interval=30s --timeout=20s --start-period=60s --retries=3 \
    CMD ["rabbitmq-diagnostics", "-q", "ping"]
