"""Accounts: scrypt password hashes, login throttling, and the old ``users.pkl`` import.

Hashing runs on worker threads (``hashlib.scrypt`` releases the GIL), so a storm of
logins never stalls the chat. Throttling is per account, not per address: behind
the classroom NAT every client has the same address.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import hashlib
import hmac
import io
import logging
import os
import pickle
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from classcord.config import Settings
from classcord.errors import LegacyImportError
from classcord.protocol import is_valid_name, loggable, name_key
from classcord.storage import Storage, StorageWorker

log = logging.getLogger("classcord.accounts")

SALT_BYTES: Final = 16
KEY_BYTES: Final = 32


@dataclass(frozen=True, slots=True)
class ScryptParams:
    n: int
    r: int
    p: int
    maxmem: int = Settings.scrypt_maxmem_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> ScryptParams:
        return cls(
            settings.scrypt_n, settings.scrypt_r, settings.scrypt_p, settings.scrypt_maxmem_bytes
        )

    def same_cost(self, other: ScryptParams | None) -> bool:
        return other is not None and (other.n, other.r, other.p) == (self.n, self.r, self.p)


def hash_password(password: str, params: ScryptParams, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$key``: the parameters travel with the hash so they can be raised."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    key = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        maxmem=params.maxmem,
        dklen=KEY_BYTES,
    )
    encoded = [base64.b64encode(part).decode("ascii") for part in (salt, key)]
    return f"scrypt${params.n}${params.r}${params.p}${encoded[0]}${encoded[1]}"


def verify_password(password: str, stored: str, maxmem: int = Settings.scrypt_maxmem_bytes) -> bool:
    try:
        scheme, n, r, p, salt_b64, key_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, key = base64.b64decode(salt_b64), base64.b64decode(key_b64)
        candidate = hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=maxmem,
            dklen=len(key),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate, key)


def hash_params(stored: str) -> ScryptParams | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        return ScryptParams(int(parts[1]), int(parts[2]), int(parts[3]))
    except ValueError:
        return None


@dataclass
class _Failures:
    times: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class LoginThrottle:
    """Per-account failure counting with a lockout. The clock is injected for tests."""

    def __init__(
        self,
        max_failures: int,
        window: float,
        lockout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_failures = max_failures
        self._window = window
        self._lockout = lockout
        self._clock = clock
        self._accounts: dict[str, _Failures] = {}

    def is_locked(self, key: str) -> bool:
        entry = self._accounts.get(key)
        return entry is not None and self._clock() < entry.locked_until

    def failure(self, key: str) -> bool:
        """Record a failure; True when this failure locks the account."""
        now = self._clock()
        entry = self._accounts.setdefault(key, _Failures())
        entry.times = [t for t in entry.times if now - t < self._window]
        entry.times.append(now)
        if len(entry.times) >= self._max_failures:
            entry.times.clear()
            entry.locked_until = now + self._lockout
            return True
        return False

    def success(self, key: str) -> None:
        self._accounts.pop(key, None)

    def unlock(self, key: str) -> int:
        """Forget failures and lockout of an account; how many entries were cleared."""
        return 1 if self._accounts.pop(key, None) is not None else 0

    def forget_stale(self) -> None:
        now = self._clock()
        stale = [
            key
            for key, entry in self._accounts.items()
            if now >= entry.locked_until and all(now - t >= self._window for t in entry.times)
        ]
        for key in stale:
            del self._accounts[key]


MAX_NICENESS: Final = 19


def _lower_thread_priority(niceness: int) -> None:
    """Hashing yields the CPU to the event loop when the machine is busy (a shared
    classroom VM): a login storm then slows logins down, not the chat. Linux applies
    niceness per thread; lowering one's own priority needs no privilege."""
    with contextlib.suppress(OSError, AttributeError):
        thread = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(MAX_NICENESS, current + niceness))


class RegisterOutcome(enum.Enum):
    OK = "ok"
    EXISTS = "exists"


class LoginOutcome(enum.Enum):
    """The value is the ``reason=`` of the auth-failure log line (fail2ban reads it)."""

    OK = "ok"
    BAD_PASSWORD = "bad-password"  # noqa: S105
    UNKNOWN_USER = "unknown-user"
    LOCKED = "locked"
    BANNED = "banned"


class Accounts:
    """Registration and authentication, awaited from sessions."""

    def __init__(
        self,
        settings: Settings,
        storage: StorageWorker,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._params = ScryptParams.from_settings(settings)
        self._storage = storage
        self._hashers = ThreadPoolExecutor(
            max_workers=settings.hash_workers,
            thread_name_prefix="classcord-hash",
            initializer=_lower_thread_priority,
            initargs=(settings.hash_thread_niceness,),
        )
        self.throttle = LoginThrottle(
            settings.login_max_failures,
            settings.login_failure_window,
            settings.login_lockout_seconds,
            clock,
        )
        self._lockout_seconds = settings.login_lockout_seconds
        self._max_failures = settings.login_max_failures
        self._registered: set[str] = set()
        self._ids: dict[str, int] = {}
        self._pending: set[str] = set()
        # Verifying unknown names against a real hash keeps their timing like a
        # known name's, so failures do not reveal which accounts exist.
        self._decoy_hash = hash_password(os.urandom(8).hex(), self._params)

    async def load(self) -> None:
        self._registered = set(await self._storage.call(self._storage.storage.user_name_keys))
        rows = await self._storage.call(self._storage.storage.user_ids)
        self._ids = {name_key(name): account_id for account_id, name in rows}

    def account_id(self, name: str) -> int | None:
        """The id of the account ``name`` (compared by ``name_key``), None for a name
        no account has. Synchronous: an in-memory map kept by load and register.
        Private history is keyed by ``storage.account_token(id)``, never by name."""
        return self._ids.get(name_key(name))

    def is_registered(self, name: str) -> bool:
        return name_key(name) in self._registered

    def is_claimed(self, name: str) -> bool:
        """Registered, or being registered right now (its hash is still computing)."""
        key = name_key(name)
        return key in self._registered or key in self._pending

    def registered_count(self) -> int:
        return len(self._registered)

    async def _hash(self, function: Callable[..., object], *args: object) -> object:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._hashers, function, *args)

    def claim(self, name: str) -> bool:
        """Reserve a name for a registration, synchronously, so that nothing (a guest,
        another registration) can take it while its hash is computed."""
        key = name_key(name)
        if key in self._registered or key in self._pending:
            return False
        self._pending.add(key)
        return True

    def release(self, name: str) -> None:
        self._pending.discard(name_key(name))

    async def complete_registration(self, name: str, password: str) -> RegisterOutcome:
        """Hash and commit a claimed name; the caller releases the claim."""
        stored = await self._hash(hash_password, password, self._params)
        assert isinstance(stored, str)
        key = name_key(name)
        added = await self._storage.call(self._storage.storage.add_user, name, key, stored)
        if added is None:
            return RegisterOutcome.EXISTS
        self._registered.add(key)
        self._ids[key] = added
        return RegisterOutcome.OK

    async def register(self, name: str, password: str) -> RegisterOutcome:
        if not self.claim(name):
            return RegisterOutcome.EXISTS
        try:
            return await self.complete_registration(name, password)
        finally:
            self.release(name)

    async def authenticate(self, name: str, password: str) -> LoginOutcome:
        key = name_key(name)
        if self.throttle.is_locked(key):
            return LoginOutcome.LOCKED
        record = await self._storage.call(self._storage.storage.get_user, name)
        stored = self._decoy_hash if record is None else record.password_hash
        ok = await self._hash(verify_password, password, stored, self._params.maxmem)
        if record is None:
            return self._failed(key, LoginOutcome.UNKNOWN_USER)
        if not ok:
            return self._failed(key, LoginOutcome.BAD_PASSWORD)
        if record.banned:
            return LoginOutcome.BANNED
        self.throttle.success(key)
        if not self._params.same_cost(hash_params(record.password_hash)):
            await self._rehash(record.name, password)
        return LoginOutcome.OK

    def _failed(self, key: str, outcome: LoginOutcome) -> LoginOutcome:
        if self.throttle.failure(key):
            log.warning(
                "login lockout: user=%s locked for %.0f s after %d failed logins",
                loggable(key),
                self._lockout_seconds,
                self._max_failures,
            )
            return LoginOutcome.LOCKED
        return outcome

    async def _rehash(self, name: str, password: str) -> None:
        stored = await self._hash(hash_password, password, self._params)
        assert isinstance(stored, str)
        await self._storage.call(self._storage.storage.set_password_hash, name, stored)
        log.info("password hash of user=%s upgraded to n=%d", name, self._params.n)

    def unlock(self, name: str) -> int:
        """``admin unlock NAME``: the account can be tried again at once."""
        return self.throttle.unlock(name_key(name))

    async def set_banned(self, name: str, banned: bool) -> bool:
        return await self._storage.call(self._storage.storage.set_banned, name, banned)

    def close(self) -> None:
        self._hashers.shutdown(wait=True, cancel_futures=True)


# --- import of the reference server's users.pkl ----------------------------------


class _DataOnlyUnpickler(pickle.Unpickler):
    """A dict of strings needs no class at all: refusing every global means loading
    a hostile pickle can never run code."""

    def find_class(self, module: str, name: str) -> type:
        raise pickle.UnpicklingError(f"forbidden object in pickle: {module}.{name}")


def load_legacy_users(data: bytes) -> dict[str, str]:
    try:
        loaded = _DataOnlyUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError) as exc:
        raise LegacyImportError(f"not a users.pkl file: {exc}") from None
    if not isinstance(loaded, dict):
        raise LegacyImportError(
            f"expected a dict of username to password, got {type(loaded).__name__}"
        )
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise LegacyImportError("every username and password must be a string")
    return loaded


@dataclass(frozen=True, slots=True)
class ImportReport:
    imported: list[str]
    skipped_existing: list[str]
    skipped_invalid: list[str]


def import_legacy_users(path: Path, settings: Settings) -> ImportReport:
    """Hash every plain-text password of ``users.pkl`` into the database."""
    users = load_legacy_users(path.read_bytes())
    params = ScryptParams.from_settings(settings)
    storage = Storage(settings.database_path)
    imported: list[str] = []
    existing: list[str] = []
    invalid: list[str] = []
    try:
        for name, password in sorted(users.items()):
            if not is_valid_name(name, settings.max_name_chars) or not password:
                invalid.append(name)
            elif storage.add_user(name, name_key(name), hash_password(password, params)):
                imported.append(name)
            else:
                existing.append(name)
    finally:
        storage.close()
    return ImportReport(imported, existing, invalid)
