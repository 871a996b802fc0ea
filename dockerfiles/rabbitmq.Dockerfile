# The official image, pinned, so the stack's every image can live in the
# user's Docker Hub namespace. It runs as its own uid 999 and ships
# rabbitmq-diagnostics for the probes.
FROM rabbitmq:3.13.7-alpine
LABEL org.opencontainers.image.description="RabbitMQ for the billing queue"
