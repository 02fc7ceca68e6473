"""Backups: retention touches only files backup made, never the one just written;
temporaries are created safely; files are private (issue 11)."""

from __future__ import annotations

import os
import stat
from datetime import datetime
from pathlib import Path

from classcord.backup import backup_name, make_backup, prune_backups, run_backup
from classcord.storage import Storage
from tests.conftest import make_settings

MOMENT = datetime(2026, 11, 20, 12, 0, 0)


def database(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "classcord.db"
    storage = Storage(path)
    storage.add_user("alice", "alice", "h")
    storage.close()
    return path


def test_manual_copies_are_never_pruned_and_the_new_backup_is_kept(tmp_path: Path) -> None:
    db = database(tmp_path)
    folder = tmp_path / "backups"
    folder.mkdir()
    old = [folder / backup_name(datetime(2026, 1, day)) for day in (1, 2, 3)]
    for path in old:
        path.write_bytes(b"old")
    manual = [folder / "classcord-manual.db", folder / "classcord-zz-before-upgrade.db"]
    for path in manual:
        path.write_bytes(b"keep me")
    made = make_backup(db, folder, MOMENT)
    removed = prune_backups(folder, 2, made)
    assert made.exists()
    assert sorted(removed) == old[:2]
    assert old[2].exists()
    assert all(path.exists() for path in manual)


def test_a_backup_named_in_the_future_cannot_push_out_the_new_one(tmp_path: Path) -> None:
    db = database(tmp_path)
    folder = tmp_path / "backups"
    folder.mkdir()
    future = folder / backup_name(datetime(2099, 1, 1))
    future.write_bytes(b"x")
    made = make_backup(db, folder, MOMENT)
    prune_backups(folder, 1, made)
    assert made.exists()


def test_a_planted_symlink_at_the_old_partial_name_is_not_followed(tmp_path: Path) -> None:
    db = database(tmp_path)
    folder = tmp_path / "backups"
    folder.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    planted = folder / (backup_name(MOMENT) + ".partial")
    planted.symlink_to(victim)
    made = make_backup(db, folder, MOMENT)
    assert victim.read_text() == "precious"
    assert made.exists()
    assert not any(p.name.endswith(".partial") and p != planted for p in folder.iterdir())


def test_backups_are_private_whatever_the_umask(tmp_path: Path) -> None:
    db = database(tmp_path)
    previous = os.umask(0)
    try:
        made = make_backup(db, tmp_path / "backups", MOMENT)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    assert stat.S_IMODE(made.parent.stat().st_mode) == 0o700


def test_run_backup_reports_and_keeps_manual_copies(tmp_path: Path, capsys: object) -> None:
    settings = make_settings(tmp_path / "data")
    database(tmp_path)
    folder = settings.data_path / "backups"
    folder.mkdir(parents=True)
    (folder / "classcord-zzz.db").write_bytes(b"manual")
    assert run_backup(settings, None, 1) == 0
    assert (folder / "classcord-zzz.db").exists()
