# ClassCord server image. See CONTAINERS.md.
#
# Builds with the classic builder of Debian 12's docker.io 20.10 and with BuildKit
# (buildx, as Debian 13 has it), without a warning on either: no BuildKit-only
# syntax. The base image is a build argument: without Docker Hub, build a local
# stand-in with scripts/build-base-image.sh and pass
#   --build-arg PYTHON_IMAGE=classcord-base:bookworm-python3
# Any image with python3 >= 3.11 and a POSIX shell works (python:3.12-alpine too).
ARG PYTHON_IMAGE=python:3.12-slim-bookworm
FROM ${PYTHON_IMAGE}

# Keep CLASSCORD_VERSION equal to classcord.__version__ (a test checks it).
ARG PYTHON_IMAGE=python:3.12-slim-bookworm
ARG CLASSCORD_VERSION=1.0.0
ARG CLASSCORD_SOURCE=https://example.invalid/classcord.git
ARG CLASSCORD_UID=10001

LABEL org.opencontainers.image.title="ClassCord" \
      org.opencontainers.image.description="ClassCord classroom chat server (JSON lines over TCP 12345)" \
      org.opencontainers.image.version="${CLASSCORD_VERSION}" \
      org.opencontainers.image.source="${CLASSCORD_SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# A fixed, unprivileged UID/GID that owns nothing but /data. useradd on Debian,
# BusyBox adduser on Alpine. A system account (no password ageing, no subordinate
# IDs) whose UID is above Debian's SYS_UID_MAX (999): -K raises the limits for
# this one call, so useradd/groupadd print no warning.
RUN set -eu; \
    if command -v useradd >/dev/null 2>&1; then \
        groupadd --system -K "SYS_GID_MAX=${CLASSCORD_UID}" --gid "${CLASSCORD_UID}" classcord; \
        useradd --system -K "SYS_UID_MAX=${CLASSCORD_UID}" --uid "${CLASSCORD_UID}" --gid classcord \
            --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin classcord; \
    else \
        addgroup -S -g "${CLASSCORD_UID}" classcord; \
        adduser -S -D -H -u "${CLASSCORD_UID}" -G classcord -h /nonexistent \
            -s /sbin/nologin classcord; \
    fi; \
    mkdir -p /data; \
    chown "${CLASSCORD_UID}:${CLASSCORD_UID}" /data; \
    chmod 0750 /data

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app \
    CLASSCORD_HOST=0.0.0.0 \
    CLASSCORD_PORT=12345 \
    CLASSCORD_DATA_DIR=/data

# Only the package, owned by root: the app user can read it, not change it.
# Byte code is compiled now, because the root filesystem is read-only at run time.
WORKDIR /app
COPY classcord/ /app/classcord/
RUN python -m compileall -q /app/classcord \
    && chmod -R u=rwX,go=rX /app

USER ${CLASSCORD_UID}:${CLASSCORD_UID}
VOLUME ["/data"]
EXPOSE 12345
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "classcord", "healthcheck", "--timeout", "3"]
CMD ["python", "-m", "classcord", "serve"]
