"""SQLite storage: schema and migrations, users, message history, backups.

``Storage`` is synchronous and owned by one thread; ``StorageWorker`` runs every call
on that single thread so the event loop never waits on disk. The database is in WAL
mode with ``synchronous=FULL``: a call that returned has been committed durably, so a
``register`` reply sent after it survives a crash or a power cut.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from classcord.errors import StorageError

T = TypeVar("T")

SCHEMA_VERSION: Final = 1

_MIGRATIONS: Final[dict[int, str]] = {
    1: """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        name_key TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at REAL NOT NULL,
        banned INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        created_at REAL NOT NULL,
        timestamp TEXT NOT NULL,
        conversation TEXT NOT NULL,
        sender TEXT NOT NULL,
        recipient TEXT,
        channel TEXT,
        content TEXT NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages (conversation, id);
    CREATE INDEX messages_by_age ON messages (created_at);
    """,
}


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    password_hash: str
    banned: bool


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One message as stored. ``conversation`` is a channel, or ``@a\\nb`` for a pair."""

    created_at: float
    timestamp: str
    conversation: str
    sender: str
    recipient: str | None
    channel: str | None
    content: str


def private_conversation(first_key: str, second_key: str) -> str:
    low, high = sorted((first_key, second_key))
    return f"@{low}\n{high}"


class Storage:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open database {path}: {exc}") from exc

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"database schema {version} is newer than this server ({SCHEMA_VERSION})"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._transaction():
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={target}")

    def _transaction(self) -> sqlite3.Connection:
        # sqlite3's context manager commits or rolls back; BEGIN makes it explicit
        # because the connection is in autocommit mode.
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def close(self) -> None:
        self._db.close()

    # users

    def user_name_keys(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT name_key FROM users")]

    def get_user(self, name: str) -> UserRecord | None:
        row = self._db.execute(
            "SELECT name, password_hash, banned FROM users WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else UserRecord(row[0], row[1], bool(row[2]))

    def add_user(self, name: str, name_key: str, password_hash: str) -> bool:
        """Insert and commit; False when the name (case-insensitively) exists."""
        try:
            with self._transaction():
                self._db.execute(
                    "INSERT INTO users (name, name_key, password_hash, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (name, name_key, password_hash, time.time()),
                )
        except sqlite3.IntegrityError:
            return False
        return True

    def set_password_hash(self, name: str, password_hash: str) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE users SET password_hash = ? WHERE name = ?", (password_hash, name)
            )

    def set_banned(self, name: str, banned: bool) -> bool:
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE users SET banned = ? WHERE name = ?", (int(banned), name)
            )
        return cursor.rowcount > 0

    # history

    def add_messages(self, records: Iterable[MessageRecord]) -> None:
        with self._transaction():
            self._db.executemany(
                "INSERT INTO messages (created_at, timestamp, conversation, sender, recipient,"
                " channel, content) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.created_at,
                        r.timestamp,
                        r.conversation,
                        r.sender,
                        r.recipient,
                        r.channel,
                        r.content,
                    )
                    for r in records
                ],
            )

    def history(self, conversation: str, limit: int) -> list[MessageRecord]:
        """The latest ``limit`` messages of a conversation, oldest first."""
        rows = self._db.execute(
            "SELECT created_at, timestamp, conversation, sender, recipient, channel, content"
            " FROM messages WHERE conversation = ? ORDER BY id DESC LIMIT ?",
            (conversation, limit),
        ).fetchall()
        return [MessageRecord(*row) for row in reversed(rows)]

    def count_messages(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM messages").fetchone()[0])

    def prune(self, retention_days: int, max_messages: int, now: float) -> int:
        """Apply the retention policy; returns how many messages were deleted."""
        deleted = 0
        with self._transaction():
            if retention_days:
                cutoff = now - retention_days * 86_400
                deleted += self._db.execute(
                    "DELETE FROM messages WHERE created_at < ?", (cutoff,)
                ).rowcount
            if max_messages:
                deleted += self._db.execute(
                    "DELETE FROM messages WHERE id <= (SELECT id FROM messages"
                    " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (max_messages,),
                ).rowcount
        return deleted

    # maintenance

    def backup_to(self, destination: Path) -> None:
        """A consistent copy while the server runs (SQLite's online backup API)."""
        target = sqlite3.connect(destination)
        try:
            self._db.backup(target)
        finally:
            target.close()

    def integrity_ok(self) -> bool:
        return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")


class StorageWorker:
    """Runs every Storage call on one dedicated thread, awaitable from the loop."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="classcord-db")

    async def call(self, function: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    async def close(self) -> None:
        await self.call(self.storage.close)
        self._executor.shutdown(wait=True)
