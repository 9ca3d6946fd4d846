# The mics-worker image: a locked, hash-checked virtualenv built in one stage, copied into a slim runtime stage
# that runs as a numeric non-root user and never writes outside /tmp (it runs with a read-only root filesystem).
#   docker build -t mics-worker .
#   docker build --build-arg BASE_IMAGE=python:3.11-slim@sha256:<digest> -t mics-worker .   # pinned base
#   docker run --read-only --tmpfs /tmp --stop-timeout 45 -e MICS_WORKER_BOOTSTRAP_SERVERS=... mics-worker
# Without any package index (scripts/check-image does this): put the wheels of requirements/runtime.lock and
# requirements/build.lock in ./wheelhouse and pass --build-arg PIP_NO_INDEX=1; the build then reaches nothing.
# No BuildKit-only feature is used (and no `syntax` line, which would fetch a frontend image): the classic
# builder and BuildKit build it alike.

# Both stages use the same base: the virtualenv's interpreter is the base's own Python.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder
LABEL org.opencontainers.image.title="mics-worker-builder"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_FIND_LINKS=/tmp/wheels
# 1: install from ./wheelhouse only (pip reads PIP_NO_INDEX from the environment the argument becomes).
ARG PIP_NO_INDEX=
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The locked dependencies get a layer of their own, before any source: editing the worker does not reinstall them.
# `wheelhouse*` is optional (a COPY whose wildcard matches nothing copies the other sources).
COPY requirements/runtime.lock requirements/build.lock wheelhouse* /tmp/wheels/
# Wheels only, every one hash-checked: nothing is compiled, setuptools included (its wheel's hash is in build.lock).
RUN pip install --no-cache-dir --require-hashes --no-deps --only-binary=:all: -r /tmp/wheels/runtime.lock \
    && pip install --no-cache-dir --require-hashes --no-deps --only-binary=:all: -r /tmp/wheels/build.lock
WORKDIR /src
COPY pyproject.toml ./
COPY worker ./worker
# The package is built without isolation (no index needed) against that setuptools; byte-code is compiled here, at
# install time, as the runtime's file system is read-only. Then the installers go: nothing runs pip at run time.
RUN pip install --no-cache-dir --no-deps --no-build-isolation --no-index --compile . \
    && python -m pip uninstall --yes setuptools pip

FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="mics-worker" \
      org.opencontainers.image.description="Kafka consumer worker that feeds the mediarithmics Tracking API"
# The slim base ships its standard library without byte-code and the root file system is read-only at run time,
# so without this every start, and every HEALTHCHECK's `mics-worker check`, would compile what it imports again
# (~0.4 s of CPU instead of ~0.1 s). Modules a worker never imports are left out. The base's own pip, setuptools
# and wheel (where it has them) are removed: nothing in the image runs them.
RUN if python -m pip --version >/dev/null 2>&1; then \
        python -m pip uninstall --yes --root-user-action=ignore pip setuptools wheel; \
    fi \
    && python -m compileall -q -j 0 -x '/(idlelib|tkinter|turtledemo|lib2to3|ensurepip|pydoc_data|test)/' \
        "$(python -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"
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
