"""``classcord backup``: a consistent copy of the live database, with retention.

The copy uses SQLite's online backup API, so it is consistent while the server
writes. It is written under a temporary name, checked, then renamed: a backup file
that exists is complete. Safe to run from cron or ``docker compose run --rm backup``.
"""

from __future__ import annotations

import signal
import sqlite3
import sys
from datetime import datetime
from pathlib import Path
from types import FrameType

from classcord.config import Settings
from classcord.errors import Interrupted, StorageError
from classcord.storage import Storage

BACKUP_PREFIX = "classcord-"
BACKUP_SUFFIX = ".db"


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def backup_name(moment: datetime) -> str:
    return f"{BACKUP_PREFIX}{moment:%Y%m%d-%H%M%S}{BACKUP_SUFFIX}"


def make_backup(database: Path, destination_dir: Path, moment: datetime) -> Path:
    if not database.exists():
        raise StorageError(f"no database at {database}")
    destination_dir.mkdir(parents=True, exist_ok=True)
    final = destination_dir / backup_name(moment)
    partial = final.with_name(final.name + ".partial")
    storage = Storage(database)
    try:
        storage.backup_to(partial)
    finally:
        storage.close()
    check = sqlite3.connect(partial)
    try:
        result = check.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        check.close()
    if result != "ok":
        partial.unlink(missing_ok=True)
        raise StorageError(f"backup failed its integrity check: {result}")
    partial.replace(final)
    return final


def prune_backups(destination_dir: Path, keep: int) -> list[Path]:
    backups = sorted(destination_dir.glob(f"{BACKUP_PREFIX}*{BACKUP_SUFFIX}"), reverse=True)
    removed = backups[keep:]
    for old in removed:
        old.unlink()
    return removed


def run_backup(settings: Settings, destination: Path | None, keep: int) -> int:
    if keep < 1:
        print("classcord backup: --keep must be at least 1", file=sys.stderr)
        return 2
    destination_dir = destination or settings.data_path / "backups"
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        made = make_backup(settings.database_path, destination_dir, datetime.now())
        removed = prune_backups(destination_dir, keep)
    except (StorageError, sqlite3.Error, OSError) as exc:
        print(f"classcord backup: failed: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        for partial in destination_dir.glob("*.partial"):
            partial.unlink(missing_ok=True)
        print(f"classcord backup: interrupted by {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"backup written: {made} ({made.stat().st_size} bytes); removed {len(removed)} old")
    return 0
