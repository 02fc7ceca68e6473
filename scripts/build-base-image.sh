#!/usr/bin/env bash
# Build a stand-in for the python:3.12-slim-bookworm base image when Docker Hub is
# unreachable: a minimal Debian 12 root filesystem with python3 made by debootstrap,
# imported with `docker import`. The ClassCord Dockerfile then builds on it with
#   docker build --build-arg PYTHON_IMAGE=classcord-base:bookworm-python3 ...
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/build-base-image.sh [OPTIONS]

Builds a local Debian 12 (bookworm) image with python3, for classrooms where
Docker Hub cannot be reached. Needs root, docker and debootstrap.

  --image NAME      image to create (default: classcord-base:bookworm-python3)
  --mirror URL      Debian mirror (default: http://deb.debian.org/debian)
  --cache-dir DIR   where the root filesystem tarball is kept between runs
                    (default: /var/cache/classcord)
  --no-upgrade      skip applying bookworm-updates and bookworm-security
  --force           rebuild even when the image or the cached tarball exists
  --remove          undo: delete the image and the cached tarball, then exit
  --dry-run         print what would be done, change nothing
  -h, --help        show this help

Steps: reuse the image if it exists; otherwise import the cached tarball if
there is one; otherwise run `debootstrap --variant=minbase --include=python3`,
apply Debian security updates, add the `python` -> `python3` symlink that the
official images have, drop apt caches, manuals and translations (keeping the
licence files), save the tarball and `docker import` it. About 110 MB.
USAGE
}

IMAGE=classcord-base:bookworm-python3
MIRROR=http://deb.debian.org/debian
SECURITY_MIRROR=http://deb.debian.org/debian-security
CACHE_DIR=/var/cache/classcord
SUITE=bookworm
UPGRADE=1
FORCE=0
REMOVE=0
DRY_RUN=0

while [ "$#" -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --image) IMAGE=${2:?--image needs a value}; shift ;;
        --mirror) MIRROR=${2:?--mirror needs a value}; shift ;;
        --cache-dir) CACHE_DIR=${2:?--cache-dir needs a value}; shift ;;
        --no-upgrade) UPGRADE=0 ;;
        --force) FORCE=1 ;;
        --remove) REMOVE=1 ;;
        --dry-run) DRY_RUN=1 ;;
        *) echo "build-base-image.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

case "$IMAGE" in
    *:latest|*:) echo "build-base-image.sh: refusing tag 'latest' or an empty tag: $IMAGE" >&2; exit 2 ;;
    *:*) ;;
    *) echo "build-base-image.sh: give an explicit tag (NAME:TAG): $IMAGE" >&2; exit 2 ;;
esac

TARBALL="$CACHE_DIR/$SUITE-python3-minbase.tar"

log() { echo "build-base-image.sh: $*"; }
run() {
    echo "+ $*"
    if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi
}
image_exists() { docker image inspect "$IMAGE" >/dev/null 2>&1; }

if [ "$REMOVE" -eq 1 ]; then
    if image_exists; then run docker image rm "$IMAGE"; else log "no image $IMAGE"; fi
    if [ -f "$TARBALL" ]; then run rm -f "$TARBALL"; else log "no tarball $TARBALL"; fi
    exit 0
fi

if [ "$FORCE" -eq 0 ] && image_exists; then
    log "image $IMAGE already exists, nothing to do (use --force to rebuild)"
    exit 0
fi

if [ "$DRY_RUN" -eq 0 ]; then
    # Two runs at once (two test sessions) take turns; the second finds the image.
    mkdir -p "$CACHE_DIR"
    exec 9>"$CACHE_DIR/.build-base-image.lock"
    flock 9
    if [ "$FORCE" -eq 0 ] && image_exists; then
        log "image $IMAGE was built meanwhile, nothing to do"
        exit 0
    fi
fi

if [ "$DRY_RUN" -eq 0 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "build-base-image.sh: must run as root" >&2; exit 1; }
    command -v docker >/dev/null || { echo "build-base-image.sh: docker not found" >&2; exit 1; }
fi

import_tarball() {
    local old_id
    old_id=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
    log "importing $TARBALL as $IMAGE"
    run docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        --message "debootstrap --variant=minbase --include=python3 $SUITE" \
        "$TARBALL" "$IMAGE"
    if [ -n "$old_id" ] && [ "$DRY_RUN" -eq 0 ]; then
        # The previous image lost its tag: remove it unless something still uses it.
        if [ "$(docker image inspect --format '{{.Id}}' "$IMAGE")" != "$old_id" ]; then
            run docker image rm "$old_id" || log "kept the previous image $old_id (still in use)"
        fi
    fi
}

if [ "$FORCE" -eq 0 ] && [ -f "$TARBALL" ]; then
    import_tarball
    exit 0
fi

if [ "$DRY_RUN" -eq 0 ]; then
    command -v debootstrap >/dev/null || {
        echo "build-base-image.sh: debootstrap not found (apt-get install debootstrap)" >&2
        exit 1
    }
fi

ROOTFS=$(mktemp -d /var/tmp/classcord-rootfs.XXXXXX)
cleanup() { rm -rf "$ROOTFS"; }
trap cleanup EXIT

log "debootstrap of $SUITE into $ROOTFS (about a minute)"
run debootstrap --variant=minbase --include=python3 "$SUITE" "$ROOTFS" "$MIRROR"

if [ "$UPGRADE" -eq 1 ]; then
    log "applying $SUITE-updates and $SUITE-security"
    if [ "$DRY_RUN" -eq 0 ]; then
        cat >"$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
    fi
    run chroot "$ROOTFS" apt-get -qq update
    run chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive apt-get -qq -y upgrade
fi

log "adding /usr/bin/python; removing apt caches, manuals, translations (licences kept)"
run ln -sf python3 "$ROOTFS/usr/bin/python"
run chroot "$ROOTFS" apt-get -qq clean
run find "$ROOTFS/var/lib/apt/lists" -mindepth 1 -delete
run find "$ROOTFS/usr/share/man" "$ROOTFS/usr/share/info" "$ROOTFS/usr/share/locale" -mindepth 1 -delete
run find "$ROOTFS/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
run find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete
run find "$ROOTFS/dev" "$ROOTFS/proc" "$ROOTFS/sys" "$ROOTFS/run" "$ROOTFS/tmp" -mindepth 1 -delete

run mkdir -p "$CACHE_DIR"
log "saving $TARBALL"
if [ "$DRY_RUN" -eq 0 ]; then
    tar --numeric-owner -C "$ROOTFS" -cf "$TARBALL.$$.tmp" .
    mv "$TARBALL.$$.tmp" "$TARBALL"
else
    echo "+ tar --numeric-owner -C $ROOTFS -cf $TARBALL ."
fi
import_tarball
if [ "$DRY_RUN" -eq 0 ]; then
    docker image ls "$IMAGE"
fi
