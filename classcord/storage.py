"""SQLite storage: schema and migrations, users, message history, backups.

``Storage`` is synchronous and owned by one thread; ``StorageWorker`` runs every call
on that single thread so the event loop never waits on disk. The database is in WAL
mode with ``synchronous=FULL``: a call that returned has been committed durably, so a
``register`` reply sent after it survives a crash or a power cut.

The data folder is private: the folder is made 0700 and the database (and with it
SQLite's WAL and SHM files, which take the database file's mode) 0600 whatever the
umask, and a folder or database owned by another user is refused (a local user who
created ``classcord.db`` first could otherwise rewrite password hashes).

The worker's thread is a daemon: a storage call stuck on a dead disk cannot keep
the process alive after shutdown has given up on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from classcord.errors import DataFolderBusy, StorageError

T = TypeVar("T")

SCHEMA_VERSION: Final = 3
# What SQLite or the binding refuse about one record (a lone surrogate is a
# UnicodeEncodeError, a ValueError): the record is at fault, not the disk.
DATA_ERRORS: Final = (
    ValueError,
    TypeError,
    OverflowError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
    sqlite3.IntegrityError,
)
DIR_MODE: Final = stat.S_IRWXU  # 0700
FILE_MODE: Final = stat.S_IRUSR | stat.S_IWUSR  # 0600
# Conversations of v1 that involved a guest (keyed by names anyone could register
# later) are kept in the file but can never be read again: no key starts with this.
ORPHAN_PREFIX: Final = "orphan:"

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
    2: """
    CREATE TABLE health_probe (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        written_at REAL NOT NULL
    );
    """,
    # Moderation (issue 12): roles, the rules in force (moderation.RuleRow) and the
    # moderation log (moderation.LogEntry). users.banned is kept but no longer read:
    # migration 3 turns each banned account into a ban rule.
    3: """
    ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'student';
    CREATE TABLE moderation_rules (
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        name TEXT NOT NULL,
        channel TEXT NOT NULL,
        until REAL,
        value INTEGER NOT NULL,
        reason TEXT NOT NULL,
        actor TEXT NOT NULL,
        since REAL NOT NULL
    );
    CREATE TABLE moderation_log (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        until REAL,
        reason TEXT NOT NULL,
        channel TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX moderation_log_by_time ON moderation_log (time);
    """,
}


def _rekey_private_conversations(db: sqlite3.Connection) -> None:
    """Migration 2: private history belongs to account ids, not to names.

    A v1 conversation ``@key1\nkey2`` between two accounts becomes ``@u<id>\nu<id>``;
    one that involved a guest (a name nobody owns, which anyone could register later
    and read) becomes unreachable. Channel rows are unchanged."""
    ids = {key: user_id for user_id, key in db.execute("SELECT id, name_key FROM users")}
    rows = db.execute(
        "SELECT DISTINCT conversation FROM messages WHERE conversation LIKE '@%'"
    ).fetchall()
    for (conversation,) in rows:
        first, _, second = conversation[1:].partition("\n")
        if first in ids and second in ids:
            new = private_conversation(account_token(ids[first]), account_token(ids[second]))
        else:
            new = ORPHAN_PREFIX + conversation
        db.execute(
            "UPDATE messages SET conversation = ? WHERE conversation = ?", (new, conversation)
        )


def _bans_to_rules(db: sqlite3.Connection) -> None:
    """Migration 3: an account banned from the admin socket keeps its ban, now a
    moderation rule without an end (the moderation log starts with this state)."""
    rows = db.execute("SELECT name, name_key, created_at FROM users WHERE banned = 1").fetchall()
    for name, key, created_at in rows:
        db.execute(
            "INSERT INTO moderation_rules VALUES ('ban', ?, ?, '', NULL, 0, '', 'admin', ?)",
            (key, name, created_at),
        )
    db.execute("UPDATE users SET banned = 0")


_PYTHON_MIGRATIONS: Final[dict[int, Callable[[sqlite3.Connection], None]]] = {
    2: _rekey_private_conversations,
    3: _bans_to_rules,
}


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    password_hash: str


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
    """The conversation key of two identity tokens (``u<id>`` or a guest's token)."""
    low, high = sorted((first_key, second_key))
    return f"@{low}\n{high}"


def sqlite_hint(exc: BaseException) -> str:
    """What to do about the SQLite errors an operator meets at start-up."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return (
            " (another process holds the database: a sqlite3 shell, a restore, a second"
            " server; stop it, then start again)"
        )
    if "malformed" in text or "not a database" in text:
        return " (the file is damaged: restore the latest backup, see README 'Data and durability')"
    return ""


# A guest's token in private conversation keys: ``g`` and random hex, never a name.
GUEST_TOKEN_PREFIX: Final = "g"  # noqa: S105 - a key prefix, not a secret


def account_token(account_id: int) -> str:
    """The identity token of an account in private conversation keys."""
    return f"u{account_id}"


def describe_owner(uid: int) -> str:
    try:
        import pwd

        return f"{uid} ({pwd.getpwuid(uid).pw_name})"
    except (KeyError, ImportError):
        return str(uid)


def _check_owned(path: Path, what: str) -> os.stat_result:
    """Refuse a file or folder another user owns (they could change it under us)."""
    info = path.lstat()
    me = os.geteuid()
    if stat.S_ISLNK(info.st_mode):
        raise StorageError(f"{what} {path} is a symbolic link: refusing to use it")
    if info.st_uid != me:
        raise StorageError(
            f"{what} {path} belongs to user {describe_owner(info.st_uid)}, not to"
            f" {describe_owner(me)} who runs the server: refusing it (another user could"
            " change it); use a folder of your own or fix its owner"
        )
    return info


def in_container() -> bool:
    return Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()


def ownership_fix(folder: Path) -> str:
    """The command that gives the folder to the user running the server."""
    uid, gid = os.geteuid(), os.getegid()
    if in_container():
        return (
            f"on the host, run 'sudo chown -R {uid}:{gid} HOST_FOLDER' for the folder"
            f" mounted at {folder} (the server runs as uid {uid} in the container), or"
            " use the named volume of docker-compose.yml"
        )
    return f"run 'sudo chown -R $USER {folder}' as the user who starts the server"


def _unusable(folder: Path, problem: str) -> StorageError:
    folder = folder.absolute()
    who = describe_owner(os.geteuid())
    try:
        owner = describe_owner(folder.stat().st_uid)
    except OSError:
        owner = "nobody it can see (a parent folder is closed to this user)"
    return StorageError(
        f"data folder {folder} {problem}: the server runs as user {who}, the folder"
        f" belongs to {owner}; fix: {ownership_fix(folder)}"
    )


def prepare_data_dir(folder: Path) -> None:
    """Create the data folder 0700, or make an existing one of ours 0700; a folder
    we cannot write or do not own is refused with the command that fixes it."""
    try:
        folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except PermissionError:
        raise _unusable(folder, "cannot be created") from None
    except OSError as exc:
        raise StorageError(f"cannot create data folder {folder}: {exc.strerror}") from None
    info = folder.lstat()
    if stat.S_ISLNK(info.st_mode):
        info = folder.stat()  # a symlinked data folder (a bind-mount idiom) is fine
    if not stat.S_ISDIR(info.st_mode):
        raise StorageError(f"data folder {folder} is not a folder")
    if info.st_uid != os.geteuid():
        raise _unusable(folder, "belongs to another user (who could change the database)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _unusable(folder, "is not writable")
    if stat.S_IMODE(info.st_mode) != DIR_MODE:
        try:
            os.chmod(folder, DIR_MODE)
        except OSError as exc:
            raise StorageError(f"cannot make data folder {folder} private: {exc}") from None


LOCK_NAME: Final = "classcord.lock"


class DataFolderLock:
    """An exclusive ``flock`` on ``DATA_DIR/classcord.lock`` held for the server's
    lifetime: a second server on the same folder is refused; the kernel releases
    the lock when the process dies, so a crash leaves nothing to clean."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, folder: Path, purpose: str = "server") -> DataFolderLock:
        import fcntl

        path = folder / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
        except OSError as exc:
            raise StorageError(f"cannot open lock file {path}: {exc.strerror}") from None
        owner = os.fstat(fd).st_uid
        if owner != os.geteuid():
            os.close(fd)
            raise StorageError(
                f"lock file {path} belongs to user {describe_owner(owner)}: refusing the data"
                " folder (another user could hold it); remove the file"
            )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise DataFolderBusy(
                f"another ClassCord server (pid {holder}) is using data folder {folder}:"
                f" stop it first, or give this {purpose} another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd, path)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def make_private_file(path: Path) -> None:
    """Create ``path`` 0600 if missing (never through a symlink), else make it 0600."""
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
        os.close(fd)
    info = _check_owned(path, "database file")
    if stat.S_IMODE(info.st_mode) != FILE_MODE:
        os.chmod(path, FILE_MODE)


class Storage:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            prepare_data_dir(path.parent)
            make_private_file(path)
            for suffix in ("-wal", "-shm"):
                side = path.with_name(path.name + suffix)
                if side.exists():
                    make_private_file(side)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
            # A page-corrupted file opens fine: read every table once so that start-up,
            # not the first login, finds it.
            self._db.execute("SELECT count(*) FROM users").fetchone()
            self._db.execute("SELECT max(id) FROM messages").fetchone()
        except DataFolderBusy:
            raise
        except (OSError, sqlite3.Error, StorageError) as exc:
            raise StorageError(f"cannot open database {path}: {exc}{sqlite_hint(exc)}") from exc

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
                if target in _PYTHON_MIGRATIONS:
                    _PYTHON_MIGRATIONS[target](self._db)
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

    def user_ids(self) -> list[tuple[int, str]]:
        """Every account as (id, name as registered)."""
        return [(row[0], row[1]) for row in self._db.execute("SELECT id, name FROM users")]

    def user_id(self, name: str) -> int | None:
        row = self._db.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def add_users(self, users: Iterable[tuple[str, str, str]]) -> list[str]:
        """Insert (name, name_key, hash) rows in ONE transaction, skipping names that
        exist; returns the names inserted. All or nothing on any other error."""
        inserted: list[str] = []
        with self._transaction():
            for name, key, password_hash in users:
                cursor = self._db.execute(
                    "INSERT INTO users (name, name_key, password_hash, created_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (name, key, password_hash, time.time()),
                )
                if cursor.rowcount:
                    inserted.append(name)
        return inserted

    def get_user(self, name: str) -> UserRecord | None:
        row = self._db.execute(
            "SELECT name, password_hash FROM users WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else UserRecord(row[0], row[1])

    def add_user(self, name: str, name_key: str, password_hash: str) -> int | None:
        """Insert and commit; the new account's id, None when the name exists."""
        return self.add_user_batch([(name, name_key, password_hash)])[0]

    def add_user_batch(self, users: list[tuple[str, str, str]]) -> list[int | None]:
        """Insert (name, name_key, hash) rows and commit them together: ONE fsync for
        all (group commit). Each row's new id, or None where the name exists (or
        appears earlier in the batch)."""
        ids: list[int | None] = []
        now = time.time()
        with self._transaction():
            for name, key, password_hash in users:
                cursor = self._db.execute(
                    "INSERT INTO users (name, name_key, password_hash, created_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (name, key, password_hash, now),
                )
                ids.append(cursor.lastrowid if cursor.rowcount else None)
        return ids

    def set_password_hash(self, name: str, password_hash: str) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE users SET password_hash = ? WHERE name = ?", (password_hash, name)
            )

    def user_roles(self) -> list[tuple[str, str]]:
        """(name_key, role) of every account that is not a student."""
        return list(self._db.execute("SELECT name_key, role FROM users WHERE role != 'student'"))

    def set_role(self, name_key: str, role: str) -> str | None:
        """By the name's key; the account's name as registered, None for no account."""
        # No RETURNING: SQLite before 3.35 (Ubuntu 20.04) lacks it.
        with self._transaction():
            row = self._db.execute(
                "SELECT name FROM users WHERE name_key = ?", (name_key,)
            ).fetchone()
            self._db.execute("UPDATE users SET role = ? WHERE name_key = ?", (role, name_key))
        return None if row is None else str(row[0])

    # moderation

    def moderation_rules(self) -> list[tuple[Any, ...]]:
        return list(self._db.execute("SELECT * FROM moderation_rules"))

    def save_moderation(
        self, rules: Iterable[tuple[Any, ...]] | None, entries: Iterable[tuple[Any, ...]]
    ) -> None:
        """The rules in force (all of them, replacing the saved ones; None: unchanged)
        and new log entries, in ONE transaction."""
        with self._transaction():
            if rules is not None:
                self._db.execute("DELETE FROM moderation_rules")
                self._db.executemany(
                    "INSERT INTO moderation_rules VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rules
                )
            self._db.executemany(
                "INSERT INTO moderation_log (time, actor, action, target, until, reason,"
                " channel, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                entries,
            )

    def moderation_log(self, since: float | None, limit: int) -> list[tuple[Any, ...]]:
        """The latest ``limit`` entries (from ``since`` on), oldest first."""
        rows = self._db.execute(
            "SELECT time, actor, action, target, until, reason, channel, detail"
            " FROM moderation_log WHERE time >= ? ORDER BY id DESC LIMIT ?",
            (-1.0 if since is None else since, limit),
        ).fetchall()
        return rows[::-1]

    def refresh_name_keys(self, key: Callable[[str], str]) -> list[tuple[str, str]]:
        """Store each account's key under the current identity rule. An account whose
        new key another account already has keeps its old key, and is returned with
        the other one's name: the admin decides (``check-names``); none is merged."""
        rows = self._db.execute("SELECT id, name, name_key FROM users ORDER BY id").fetchall()
        taken = {stored: name for _, name, stored in rows}
        clashes: list[tuple[str, str]] = []
        with self._transaction():
            for account_id, name, stored in rows:
                new = key(name)
                if new == stored:
                    continue
                if new in taken:
                    clashes.append((name, taken[new]))
                    continue
                self._db.execute("UPDATE users SET name_key = ? WHERE id = ?", (new, account_id))
                del taken[stored]
                taken[new] = name
        return clashes

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

    def add_messages_isolating(self, records: list[MessageRecord]) -> list[tuple[int, str]]:
        """Insert record by record in ONE transaction (one fsync), skipping those
        SQLite refuses for their data; returns (index, reason) of the skipped ones.
        An environmental failure (disk full, locked) raises and writes nothing."""
        refused: list[tuple[int, str]] = []
        with self._transaction():
            for index, r in enumerate(records):
                try:
                    self._db.execute(
                        "INSERT INTO messages (created_at, timestamp, conversation, sender,"
                        " recipient, channel, content) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            r.created_at,
                            r.timestamp,
                            r.conversation,
                            r.sender,
                            r.recipient,
                            r.channel,
                            r.content,
                        ),
                    )
                except DATA_ERRORS as exc:
                    refused.append((index, f"{type(exc).__name__}: {exc}"[:200]))
        return refused

    def history(self, conversation: str, limit: int) -> list[MessageRecord]:
        """The latest ``limit`` messages of a conversation, oldest first."""
        rows = self._db.execute(
            "SELECT created_at, timestamp, conversation, sender, recipient, channel, content"
            " FROM messages WHERE conversation = ? ORDER BY id DESC LIMIT ?",
            (conversation, limit),
        ).fetchall()
        return [MessageRecord(*row) for row in reversed(rows)]

    def delete_latest(self, sender: str, count: int) -> list[tuple[str, str]]:
        """Remove the latest ``count`` channel messages of ``sender`` (private ones
        stay); returns (timestamp, channel) of each, oldest first."""
        with self._transaction():
            rows = self._db.execute(
                "SELECT id, timestamp, channel FROM messages WHERE sender = ?"
                " AND channel IS NOT NULL ORDER BY id DESC LIMIT ?",
                (sender, count),
            ).fetchall()
            self._db.executemany("DELETE FROM messages WHERE id = ?", [(r[0],) for r in rows])
        return [(str(ts), str(channel)) for _, ts, channel in reversed(rows)]

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
                # The moderation log is kept as long as what it is about.
                self._db.execute("DELETE FROM moderation_log WHERE time < ?", (cutoff,))
            if max_messages:
                deleted += self._db.execute(
                    "DELETE FROM messages WHERE id <= (SELECT id FROM messages"
                    " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (max_messages,),
                ).rowcount
                self._db.execute(
                    "DELETE FROM moderation_log WHERE id <= (SELECT id FROM moderation_log"
                    " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (max_messages,),
                )
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

    def write_probe(self, now: float) -> None:
        """A real committed write (the health check): raises when the disk refuses."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO health_probe (id, written_at) VALUES (1, ?)", (now,)
            )


_Job = tuple["Future[Any]", Callable[..., Any], tuple[object, ...]]


class StorageWorker:
    """Runs every Storage call on one dedicated daemon thread, awaitable from the loop.

    A daemon thread, not an executor's: if the disk hangs a call forever, shutdown
    gives up on it after its bound and the process can still exit."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="classcord-db", daemon=True)
        self._thread.start()
        self.closed = False

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, function, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args))
            except BaseException as exc:
                future.set_exception(exc)

    def submit(self, function: Callable[..., T], *args: object) -> Future[T]:
        future: Future[T] = Future()
        self._jobs.put((future, function, args))
        return future

    async def call(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.wrap_future(self.submit(function, *args))

    async def close(self, timeout: float | None = None) -> bool:
        """Close the database; False when it did not finish within ``timeout``
        (the thread is then abandoned, it cannot keep the process alive)."""
        if self.closed:
            return True
        self.closed = True
        try:
            await asyncio.wait_for(self.call(self.storage.close), timeout)
        except TimeoutError:
            return False
        finally:
            self._jobs.put(None)
        return True

    @property
    def busy_thread_alive(self) -> bool:
        return self._thread.is_alive()
