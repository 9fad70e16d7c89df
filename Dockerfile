# msgarchive sidecar image.
# Build: docker build -t msgarchive .
# It listens on 127.0.0.1:50051 by default: in a Kubernetes pod the sender
# container shares the network namespace and reaches it on loopback. Set
# MSGARCHIVE_LISTEN=0.0.0.0:50051 to publish the port outside the container.

# --- build: wheels for the server and its runtime dependencies only ---------
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY client/ client/
COPY server/ server/
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[server,tracing]"

# --- runtime -----------------------------------------------------------------
FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/msgarchive msgarchive
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /var/lib/msgarchive
ENV MSGARCHIVE_STORE=/var/lib/msgarchive/archive \
    MSGARCHIVE_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
# gRPC; Prometheus metrics when MSGARCHIVE_METRICS_LISTEN is set; the HTTP
# view when MSGARCHIVE_HTTP_LISTEN is set (e.g. 0.0.0.0:8080, with API keys).
EXPOSE 50051 9464 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["msgarchive", "health", "--address", "127.0.0.1:50051"]
ENTRYPOINT ["msgarchive", "serve"]
