#!/usr/bin/env bash
# Restore the ClassCord database of the compose deployment from a backup made by
# `docker compose run --rm backup`. The current database is saved first.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/container-restore.sh [OPTIONS] BACKUP
       scripts/container-restore.sh [OPTIONS] --from-host FILE

Puts /data/backups/BACKUP back as the live database of the compose deployment:
  1. stops the classcord service (clients get the shutdown notice);
  2. in a one-off container of the backup service (no network, read-only root):
     checks BACKUP with PRAGMA integrity_check, saves the current database as
     /data/backups/pre-restore-YYYYmmdd-HHMMSS.db (never pruned by the backup
     job), copies BACKUP into place with SQLite's backup API and removes the
     old -wal/-shm files;
  3. starts the classcord service again.
BACKUP is a file name from /data/backups, e.g. classcord-20250620-031500.db;
--list shows them. To undo a restore, restore the pre-restore-*.db it made.
--from-host FILE restores a database file of this machine instead (a backup
made by `python3 -m classcord backup` of a server run without Docker, e.g. the
systemd service): it is streamed into the one-off container on its standard
input, so it needs no permission change, and is kept as
/data/backups/from-host-YYYYmmdd-HHMMSS.db.

  --list            list the backups in the volume and exit
  --from-host FILE  restore FILE from this machine (see above)
  --env-file FILE   passed to compose (default: .env next to docker-compose.yml);
                    checked first: a missing file or a malformed CLASSCORD_PORT,
                    CLASSCORD_BIND or COMPOSE_PROJECT_NAME stops here (exit 2)
  --compose CMD     compose command, e.g. "docker compose" or docker-compose
                    (default: the CLASSCORD_COMPOSE variable, else whichever of
                    the two answers `version` with the newest Compose)
  --dry-run         print the commands, change nothing
  -h, --help        show this help
USAGE
}

cd "$(dirname "$0")/.."
ENV_FILE=
COMPOSE_CMD=${CLASSCORD_COMPOSE:-}
BACKUP=
FROM_HOST=
LIST=0
DRY_RUN=0
while [ "$#" -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --list) LIST=1 ;;
        --from-host) FROM_HOST=${2:?--from-host needs a file}; shift ;;
        --env-file) ENV_FILE=${2:?--env-file needs a file}; shift ;;
        --compose) COMPOSE_CMD=${2:?--compose needs a command}; shift ;;
        --dry-run) DRY_RUN=1 ;;
        -*) echo "container-restore.sh: unknown option: $1 (see --help)" >&2; exit 2 ;;
        *) [ -z "$BACKUP" ] || { echo "container-restore.sh: one BACKUP only" >&2; exit 2; }
           BACKUP=$1 ;;
    esac
    shift
done

# shellcheck source=scripts/lib/compose.sh
. scripts/lib/compose.sh
env_file_check container-restore.sh "${ENV_FILE:-.env}"
compose_pick container-restore.sh "$COMPOSE_CMD"
if [ -n "$ENV_FILE" ]; then
    COMPOSE+=(--env-file "$ENV_FILE")
fi

run() {
    echo "+ $*"
    if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi
}

if [ "$LIST" -eq 1 ]; then
    run "${COMPOSE[@]}" run --rm -T backup sh -c 'ls -l /data/backups'
    exit 0
fi

if [ -n "$FROM_HOST" ]; then
    [ -z "$BACKUP" ] || { echo "container-restore.sh: BACKUP or --from-host, not both" >&2; exit 2; }
    [ -f "$FROM_HOST" ] && [ -r "$FROM_HOST" ] \
        || { echo "container-restore.sh: cannot read $FROM_HOST" >&2; exit 2; }
    BACKUP=-
else
    case "$BACKUP" in
        "") echo "container-restore.sh: give the BACKUP file name (see --list)" >&2; exit 2 ;;
        */*|.*) echo "container-restore.sh: BACKUP is a file name in /data/backups, not a path" >&2; exit 2 ;;
    esac
fi

# Runs inside the container, as the unprivileged user, on the /data volume.
RESTORE_PY='
import os, shutil, sqlite3, sys, time
live = "/data/classcord.db"
if sys.argv[1] == "-":
    os.makedirs("/data/backups", exist_ok=True)
    source = time.strftime("/data/backups/from-host-%Y%m%d-%H%M%S.db")
    with open(source + ".partial", "wb") as out:
        shutil.copyfileobj(sys.stdin.buffer, out)
    os.replace(source + ".partial", source)
    print(f"restore: received the host file as {source}")
else:
    source = os.path.join("/data/backups", sys.argv[1])
if not os.path.isfile(source):
    sys.exit(f"restore: no such backup: {source}")
check = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
try:
    result = check.execute("PRAGMA integrity_check").fetchone()[0]
finally:
    check.close()
if result != "ok":
    sys.exit(f"restore: {source} failed its integrity check: {result}")
if os.path.exists(live):
    saved = time.strftime("/data/backups/pre-restore-%Y%m%d-%H%M%S.db")
    src, dst = sqlite3.connect(live), sqlite3.connect(saved)
    src.backup(dst)
    dst.close(); src.close()
    print(f"restore: current database saved as {saved}")
staging = live + ".restoring"
src, dst = sqlite3.connect(f"file:{source}?mode=ro", uri=True), sqlite3.connect(staging)
src.backup(dst)
dst.close(); src.close()
for stale in (live + "-wal", live + "-shm"):
    if os.path.exists(stale):
        os.remove(stale)
os.replace(staging, live)
print(f"restore: {live} is now a copy of {source}")
'

run "${COMPOSE[@]}" stop classcord
if [ -n "$FROM_HOST" ]; then
    echo "+ ${COMPOSE[*]} run --rm -T backup python -c \"\$RESTORE_PY\" - < $FROM_HOST"
    if [ "$DRY_RUN" -eq 0 ]; then
        "${COMPOSE[@]}" run --rm -T backup python -c "$RESTORE_PY" - <"$FROM_HOST"
    fi
else
    echo "+ ${COMPOSE[*]} run --rm -T backup python -c \"\$RESTORE_PY\" $BACKUP"
    if [ "$DRY_RUN" -eq 0 ]; then
        "${COMPOSE[@]}" run --rm -T backup python -c "$RESTORE_PY" "$BACKUP"
    fi
fi
run "${COMPOSE[@]}" start classcord
if [ "$DRY_RUN" -eq 1 ]; then
    echo "container-restore.sh: dry run, nothing changed"
else
    echo "container-restore.sh: restored ${FROM_HOST:-$BACKUP}; check with: ${COMPOSE[*]} ps"
fi
