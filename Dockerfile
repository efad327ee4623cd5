# The haoperator image: the operator (`haoperator run`) and the ha-elector sidecar of
# ActivePassive pods (`haoperator elect`) are the same image. Build it with `make image`.
#
# Two stages on the same Debian 12 Python 3.11: the build stage makes a virtual environment from
# the hash-pinned lock file; the runtime stage is distroless (no shell, no package manager, no
# pip) and gets only that environment. It runs as a numeric non-root user and never writes to
# its root filesystem, so it works with readOnlyRootFilesystem under the `restricted` policy.
# For releases, pin both bases by digest (image:tag@sha256:...).
#
# The two bases are build arguments whose defaults are the public images users pull. testenv
# (testenv/image, `make image-local`) passes its own, made from the same Debian 12 packages
# with mmdebstrap, so the image is built without a registry: BUILD_BASE must be Debian 12 with
# a shell and dpkg; RUNTIME_BASE must have Debian 12's Python 3.11 at /usr/bin/python3.
ARG BUILD_BASE=docker.io/library/debian:12-slim
ARG RUNTIME_BASE=gcr.io/distroless/python3-debian12:nonroot

FROM ${BUILD_BASE} AS build
# A base that already has python3-venv (testenv's) skips apt.
RUN dpkg --status python3-venv >/dev/null 2>&1 \
 || { apt-get update \
      && apt-get install --yes --no-install-recommends python3-venv \
      && rm -rf /var/lib/apt/lists/*; }
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /venv
# Dependencies first (their layer survives code changes): exact versions, every file checked
# against its hash, wheels only (the runtime has no compiler to build anything).
COPY requirements/runtime.lock /src/requirements/runtime.lock
RUN /venv/bin/pip install --require-hashes --only-binary=:all: -r /src/requirements/runtime.lock
# The project itself, without dependencies: all of them came from the lock file above.
COPY pyproject.toml README.md /src/
COPY operator /src/operator
# Bytecode checked by hash, not by the sources' mtime: image layers round mtimes to the second,
# which left most .pyc files stale, so every start (read-only root) compiled the modules again in
# memory (the ha-elector sidecar was OOMKilled at its 128 MiB limit doing it).
RUN /venv/bin/pip install --no-deps /src \
 && /venv/bin/pip uninstall --yes pip setuptools \
 && /venv/bin/python -m compileall -q -f --invalidation-mode unchecked-hash /venv/lib

# gcr.io/distroless/python3-debian12 ships Debian 12's Python 3.11, the interpreter the build
# stage used, at the same path (/usr/bin/python3), so the copied environment runs as it is.
FROM ${RUNTIME_BASE}
COPY --from=build /venv /venv
ENV PATH=/venv/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The same uid the operator's renderer gives the ha-elector sidecar (core/render/sidecar.py).
USER 65532:65532
# 8080: the operator's /healthz; 9090: its metrics; the sidecar uses its HAService's port.
EXPOSE 8080 9090
ENTRYPOINT ["haoperator"]
CMD ["run", "--all-namespaces"]
