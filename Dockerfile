# syntax=docker/dockerfile:1
# The mics-worker image: a locked, hash-checked virtualenv built in one stage, copied into a slim runtime stage
# that runs as a numeric non-root user and never writes outside /tmp (it runs with a read-only root filesystem).
#   docker build -t mics-worker .
#   docker run --read-only --tmpfs /tmp -e MICS_WORKER_BOOTSTRAP_SERVERS=... mics-worker

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The locked dependencies get a layer of their own, before any source: editing the worker does not reinstall them.
COPY requirements/runtime.lock /tmp/runtime.lock
RUN pip install --no-cache-dir --require-hashes --no-deps -r /tmp/runtime.lock
# The package is built without isolation (no index needed), against this pinned, hash-checked setuptools.
RUN printf '%s\n' 'setuptools==84.2.1 --hash=sha256:3ff8b3b5492a0aa66960f4419365a86b84e013070d4313e4d4a6894f5d64d6bc' \
        > /tmp/build.lock \
    && pip install --no-cache-dir --require-hashes --no-deps -r /tmp/build.lock
WORKDIR /src
COPY pyproject.toml ./
COPY worker ./worker
# Byte-code is compiled here, at install time: the runtime's file system is read-only.
RUN pip install --no-cache-dir --no-deps --no-build-isolation --compile . \
    && pip uninstall --yes setuptools

FROM python:3.11-slim AS runtime
LABEL org.opencontainers.image.title="mics-worker" \
      org.opencontainers.image.description="Kafka consumer worker that feeds the mediarithmics Tracking API"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    MICS_WORKER_SCHEMAS_DIR=/opt/mics-worker/schemas \
    MICS_WORKER_HEALTH_PORT=9102
COPY --from=builder /opt/venv /opt/venv
COPY schemas /opt/mics-worker/schemas
WORKDIR /tmp
USER 10001:10001
EXPOSE 9102
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["mics-worker", "check"]
ENTRYPOINT ["mics-worker"]
CMD ["run"]
