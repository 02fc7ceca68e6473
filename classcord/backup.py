"""``classcord backup``: a consistent copy of the live database, with retention.

The copy uses SQLite's online backup API, so it is consistent while the server
writes. It is written under a temporary name, checked, then renamed: a backup file
that exists is complete. Safe to run from cron or ``docker compose run --rm backup``.

The temporary file is created with ``O_EXCL`` under a random name (``mkstemp``), so a
symlink planted in the folder is never followed; backups are 0600 in a 0700 folder.
Retention removes only files this command names (``classcord-YYYYmmdd-HHMMSS.db``),
never the backup it has just written, and never a manual copy.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import stat
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from types import FrameType

from classcord.config import Settings
from classcord.errors import Interrupted, StorageError
from classcord.storage import DIR_MODE, FILE_MODE, Storage, describe_owner

BACKUP_PREFIX = "classcord-"
BACKUP_SUFFIX = ".db"
BACKUP_PATTERN = re.compile(r"classcord-\d{8}-\d{6}\.db")
PARTIAL_PREFIX = ".classcord-backup-"
PARTIAL_SUFFIX = ".partial"


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def backup_name(moment: datetime) -> str:
    return f"{BACKUP_PREFIX}{moment:%Y%m%d-%H%M%S}{BACKUP_SUFFIX}"


def _prepare_destination(folder: Path) -> None:
    folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    info = folder.lstat()
    if stat.S_ISLNK(info.st_mode):
        info = folder.stat()
    if info.st_uid != os.geteuid():
        raise StorageError(
            f"backup folder {folder} belongs to user {describe_owner(info.st_uid)}: refusing"
            " to write password hashes there; choose a folder of your own with --dest"
        )
    if stat.S_IMODE(info.st_mode) & (stat.S_IRWXG | stat.S_IRWXO):
        os.chmod(folder, DIR_MODE)


def make_backup(
    database: Path, destination_dir: Path, moment: datetime, partials: list[Path] | None = None
) -> Path:
    """Write, check and rename one backup; ``partials`` receives the temporary's path
    (so that an interruption removes exactly that file)."""
    if not database.exists():
        raise StorageError(f"no database at {database}")
    _prepare_destination(destination_dir)
    final = destination_dir / backup_name(moment)
    fd, name = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=PARTIAL_SUFFIX, dir=destination_dir)
    os.close(fd)  # created O_EXCL, 0600: ours, not a planted symlink
    partial = Path(name)
    if partials is not None:
        partials.append(partial)
    try:
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
            raise StorageError(f"backup failed its integrity check: {result}")
        os.chmod(partial, FILE_MODE)
        partial.replace(final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return final


def prune_backups(destination_dir: Path, keep: int, made: Path | None = None) -> list[Path]:
    """Keep the ``keep`` newest backups this command made (``made`` always among
    them); other files are never touched."""
    ours = sorted(
        (p for p in destination_dir.iterdir() if BACKUP_PATTERN.fullmatch(p.name)),
        key=lambda p: p.name,
        reverse=True,
    )
    others = [p for p in ours if p != made]
    removed = others[keep - 1 :] if made is not None else others[keep:]
    for old in removed:
        old.unlink(missing_ok=True)
    return removed


def run_backup(settings: Settings, destination: Path | None, keep: int) -> int:
    if keep < 1:
        print("classcord backup: --keep must be at least 1", file=sys.stderr)
        return 2
    destination_dir = destination or settings.data_path / "backups"
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    partials: list[Path] = []
    try:
        made = make_backup(settings.database_path, destination_dir, datetime.now(), partials)
        removed = prune_backups(destination_dir, keep, made)
    except (StorageError, sqlite3.Error, OSError) as exc:
        print(f"classcord backup: failed: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        for partial in partials:
            partial.unlink(missing_ok=True)
        print(f"classcord backup: interrupted by {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"backup written: {made} ({made.stat().st_size} bytes); removed {len(removed)} old")
    return 0
