"""Private history belongs to account ids (migration 2) and Accounts.account_id."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from classcord.storage import (
    _MIGRATIONS,
    ORPHAN_PREFIX,
    SCHEMA_VERSION,
    Storage,
    account_token,
    private_conversation,
)
from tests.support.harness import Harness


def make_v1_database(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(_MIGRATIONS[1])
    db.execute("PRAGMA user_version=1")
    for user_id, name in ((1, "Alice"), (2, "bob"), (10, "zoe")):
        db.execute(
            "INSERT INTO users (id, name, name_key, password_hash, created_at) VALUES (?,?,?,?,0)",
            (user_id, name, name.casefold(), "scrypt$x"),
        )
    rows = [
        "#general",
        "@alice\nbob",  # two accounts
        "@bob\nzoe",  # ids 2 and 10: sorted as strings, u10 < u2
        "@alice\ncarol",  # carol was a guest: anyone could register carol later
        "@invité\ninvité_2",  # two guests
    ]
    for n, conversation in enumerate(rows):
        db.execute(
            "INSERT INTO messages (created_at, timestamp, conversation, sender, content)"
            " VALUES (?, 't', ?, 's', ?)",
            (n, conversation, f"m{n}"),
        )
    db.commit()
    db.close()


def test_migration_2_rekeys_private_history_by_account_id(tmp_path: Path) -> None:
    path = tmp_path / "data" / "classcord.db"
    make_v1_database(path)
    storage = Storage(path)
    try:
        (version,) = storage._db.execute("PRAGMA user_version").fetchone()
        assert version == SCHEMA_VERSION
        keys = dict(storage._db.execute("SELECT content, conversation FROM messages").fetchall())
    finally:
        storage.close()
    assert keys["m0"] == "#general"
    assert keys["m1"] == "@u1\nu2"
    assert keys["m2"] == "@u10\nu2" == private_conversation(account_token(2), account_token(10))
    assert keys["m3"] == ORPHAN_PREFIX + "@alice\ncarol"
    assert keys["m4"] == ORPHAN_PREFIX + "@invité\ninvité_2"
    assert not any(k.startswith("@") and ("alice" in k or "carol" in k) for k in keys.values())


def test_a_new_database_is_created_at_the_current_schema(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "data" / "classcord.db")
    try:
        assert storage._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        storage.write_probe(1.0)
    finally:
        storage.close()


async def test_account_id_follows_load_and_registration(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    await harness.accounts.load()
    assert harness.accounts.account_id("alice") is None
    await harness.user("Alice")
    first = harness.accounts.account_id("alice")
    assert first is not None
    assert harness.accounts.account_id("ALICE") == first
    await harness.user("bob")
    assert harness.accounts.account_id("bob") not in {None, first}
    await harness.close()
    again = Harness(tmp_path)
    await again.accounts.load()
    assert again.accounts.account_id("Alice") == first
    await again.close()
