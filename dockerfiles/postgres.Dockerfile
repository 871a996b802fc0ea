# The official image, pinned, so the stack's every image can live in the
# user's Docker Hub namespace. It runs as its own uid 999 and ships
# pg_isready for the probes.
FROM postgres:16.9-alpine
LABEL org.opencontainers.image.description="PostgreSQL for inventory-db and billing-db"
