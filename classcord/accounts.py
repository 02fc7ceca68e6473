"""Accounts: scrypt password hashes, login throttling, and the old ``users.pkl`` import.

Hashing runs on worker threads (``hashlib.scrypt`` releases the GIL), so a storm of
logins never stalls the chat. Throttling is per account, not per address: behind
the classroom NAT every client has the same address.

Fairness (issue 11): at most ``login_hashes_in_flight`` hashes are queued or running
in total and ``login_hashes_per_connection`` per connection; the queue is ordered by
how many logins that connection has failed, so a classmate who has not failed goes
before 600 connections that keep failing, and a request past the bound is answered
at once, without hashing (``Login failed.``, reason ``busy``, which the fail2ban
filter does not count). A queued request of a connection that failed more is
evicted to make room for one that failed less.

Lockout: failures are counted per (exact account name, connection), so someone who
keeps failing on an account locks only their own connection out of it, never the
owner; once an account has ``login_max_failures`` recent failures, connections that
already failed on it get at most one guess per ``login_account_slowdown_seconds``
on it, while a connection that has not failed is never slowed. Failures on another
spelling (``VICTIM2``) are that spelling's, not the account's. ``admin unlock NAME``
clears it all.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import functools
import hashlib
import heapq
import hmac
import io
import itertools
import logging
import os
import pickle
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

from classcord import texts
from classcord.config import Settings
from classcord.errors import ClientError, HashBusy, LegacyImportError
from classcord.protocol import is_reserved_name, is_valid_name, loggable, name_key
from classcord.storage import DataFolderLock, Storage, StorageWorker, prepare_data_dir

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

    def unlock_prefix(self, prefix: str) -> int:
        keys = [key for key in self._accounts if key.startswith(prefix)]
        for key in keys:
            del self._accounts[key]
        return len(keys)

    def trim(self, limit: int) -> None:
        """Past ``limit`` entries forget the stale, then the oldest (a flood of
        distinct names must not grow memory without bound)."""
        if len(self._accounts) <= limit:
            return
        self.forget_stale()
        target = limit - limit // 10
        while len(self._accounts) > target:
            del self._accounts[next(iter(self._accounts))]

    def failures_of(self, key: str) -> int:
        entry = self._accounts.get(key)
        if entry is None:
            return 0
        now = self._clock()
        return sum(1 for t in entry.times if now - t < self._window)

    def forget_stale(self) -> None:
        now = self._clock()
        stale = [
            key
            for key, entry in self._accounts.items()
            if now >= entry.locked_until and all(now - t >= self._window for t in entry.times)
        ]
        for key in stale:
            del self._accounts[key]


@dataclass
class _ClientState:
    token: int
    failures: int = 0
    in_flight: int = 0


@dataclass
class _AccountAttempts:
    failures: list[float] = field(default_factory=list)
    refusals: list[float] = field(default_factory=list)  # busy answers, for priority
    last_slowed_guess: float = float("-inf")


class LoginGuard:
    """Who may try which account now. Failures count per (exact name, connection);
    the clock is injected for tests. ``client`` is any object that stands for one
    connection (the Session); None counts per name, as before."""

    def __init__(
        self,
        max_failures: int,
        window: float,
        lockout: float,
        slowdown: float,
        clock: Callable[[], float] = time.monotonic,
        tracked_max: int = 100_000,
    ) -> None:
        self.pairs = LoginThrottle(max_failures, window, lockout, clock)
        self._tracked_max = tracked_max
        self._max_failures = max_failures
        self._window = window
        self._slowdown = slowdown
        self._clock = clock
        self._accounts: dict[str, _AccountAttempts] = {}
        self._clients: weakref.WeakKeyDictionary[Any, _ClientState] = weakref.WeakKeyDictionary()
        self._tokens = itertools.count(1)

    def client(self, client: object | None) -> _ClientState | None:
        if client is None:
            return None
        state = self._clients.get(client)
        if state is None:
            state = self._clients[client] = _ClientState(next(self._tokens))
        return state

    def _pair(self, name: str, client: object | None) -> str:
        state = self.client(client)
        return f"{name}\0{state.token if state else 0}"

    def refusal(self, name: str, client: object | None) -> bool:
        """True when this connection may not try this name now (no hash is spent)."""
        if self.pairs.is_locked(self._pair(name, client)):
            return True
        state = self.client(client)
        attempts = self._accounts.get(name)
        if attempts is None or state is None:
            return False
        now = self._clock()
        recent = [t for t in attempts.failures if now - t < self._window]
        attempts.failures = recent
        if len(recent) < self._max_failures or not self.pairs.failures_of(self._pair(name, client)):
            return False
        if now - attempts.last_slowed_guess < self._slowdown:
            return True
        attempts.last_slowed_guess = now
        return False

    def failure(self, name: str, client: object | None) -> bool:
        """Record a failure; True when it locks this connection out of this name."""
        state = self.client(client)
        if state is not None:
            state.failures += 1
        attempts = self._account(name)
        now = self._clock()
        # Only "at least max_failures recent" matters: keep no more than that.
        attempts.failures = [t for t in attempts.failures if now - t < self._window]
        attempts.failures = [*attempts.failures[-self._max_failures :], now]
        locked = self.pairs.failure(self._pair(name, client))
        self.pairs.trim(self._tracked_max)
        return locked

    def _account(self, name: str) -> _AccountAttempts:
        attempts = self._accounts.get(name)
        if attempts is None:
            if len(self._accounts) >= self._tracked_max:
                self.forget_stale()
                target = self._tracked_max - self._tracked_max // 10
                while len(self._accounts) > target:
                    del self._accounts[next(iter(self._accounts))]
            attempts = self._accounts[name] = _AccountAttempts()
        return attempts

    def success(self, name: str, client: object | None) -> None:
        self.pairs.success(self._pair(name, client))
        state = self._clients.get(client) if client is not None else None
        if state is not None and state.failures == 0 and state.in_flight == 0:
            # Nothing to remember about a connection that never failed: ten thousand
            # logged-in clients would otherwise each keep this (and a weak reference).
            del self._clients[client]

    def priority(self, name: str, client: object | None) -> int:
        """Lower goes first: the connection's failures (by name without a client)."""
        state = self.client(client)
        if state is not None:
            return state.failures
        attempts = self._accounts.get(name)
        if attempts is None:
            return 0
        now = self._clock()
        attempts.refusals = [t for t in attempts.refusals if now - t < self._window]
        return len(attempts.refusals) + sum(1 for t in attempts.failures if now - t < self._window)

    def refused(self, name: str, client: object | None) -> None:
        """A busy answer: the next attempt of this connection (or name) waits longer."""
        state = self.client(client)
        if state is not None:
            state.failures += 1
        else:
            refusals = self._account(name).refusals
            refusals.append(self._clock())
            del refusals[: -self._max_failures]  # enough to rank it after a fresh name

    def unlock(self, name: str) -> int:
        cleared = self.pairs.unlock_prefix(f"{name}\0")
        if self._accounts.pop(name, None) is not None:
            cleared += 1
        return cleared

    def forget_stale(self) -> None:
        self.pairs.forget_stale()
        now = self._clock()
        for name in [
            n
            for n, a in self._accounts.items()
            if all(now - t >= self._window for t in a.failures + a.refusals)
        ]:
            del self._accounts[name]


@dataclass(order=True)
class _HashJob:
    priority: int
    seq: int
    function: Callable[..., object] = field(compare=False)
    args: tuple[object, ...] = field(compare=False)
    future: asyncio.Future[object] = field(compare=False)


class HashScheduler:
    """At most ``capacity`` hashes queued or running; the lowest priority number
    runs first; past capacity a job either evicts a worse queued one or is refused
    (``HashBusy``), at once."""

    def __init__(
        self,
        executor: ThreadPoolExecutor,
        workers: int,
        capacity: int,
        depth: int = 1,
        pipeline_seconds: float = 0.0,
    ) -> None:
        self._executor = executor
        # Jobs handed to the executor at once: more than its threads, so that hashes
        # that finish back to back complete their logins in one loop pass, and every
        # client gets one write for all their presence lines instead of one each
        # (with one job at a time, N logins cost N writes to each of N clients).
        self._threads = workers
        # At most half the bound on hashes waiting: a job handed to the executor
        # can no longer be evicted, and a classmate's login must still find a
        # queued attacker's hash to take the place of (else it is refused).
        self._most_workers = max(workers, capacity // 2)
        self._min_workers = min(workers * depth, self._most_workers)
        self._workers = self._min_workers
        # Fast hashes (cheap parameters) would be throttled by a fixed depth: the
        # depth grows to what the threads compute in ``pipeline_seconds``, measured.
        self._pipeline_seconds = pipeline_seconds
        self._mean_seconds: float | None = None
        self._capacity = capacity
        self._queue: list[_HashJob] = []
        self._running = 0
        self._seq = itertools.count()
        self.refused = 0
        self.completed = 0  # hashes done: how many went before a given login

    @property
    def load(self) -> int:
        return self._running + len(self._queue)

    def would_refuse(self, priority: int) -> bool:
        """True when a job of this priority would be refused now (checked before any
        database work, so a flood is answered at the cost of a comparison)."""
        if self.load < self._capacity:
            return False
        worst = max(self._queue, default=None)
        return worst is None or worst.priority <= priority

    async def run(self, priority: int, function: Callable[..., object], *args: object) -> object:
        loop = asyncio.get_running_loop()
        job = _HashJob(priority, next(self._seq), function, args, loop.create_future())
        if self.load >= self._capacity:
            worst = max(self._queue, default=None)
            if worst is None or worst.priority <= priority:
                self.refused += 1
                raise HashBusy
            self._queue.remove(worst)
            heapq.heapify(self._queue)
            self.refused += 1
            if not worst.future.done():
                worst.future.set_exception(HashBusy())
        heapq.heappush(self._queue, job)
        self._start(loop)
        try:
            return await job.future
        except asyncio.CancelledError:
            if job in self._queue:  # never started: free its place
                self._queue.remove(job)
                heapq.heapify(self._queue)
            raise

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._running < self._workers and self._queue:
            job = heapq.heappop(self._queue)
            if job.future.done():
                continue
            self._running += 1
            running = loop.run_in_executor(self._executor, _timed, job.function, job.args)
            running.add_done_callback(functools.partial(self._finished, loop, job))

    def _finished(
        self, loop: asyncio.AbstractEventLoop, job: _HashJob, done: asyncio.Future[object]
    ) -> None:
        self._running -= 1
        self.completed += 1
        if not job.future.done():
            if done.cancelled():
                job.future.cancel()
            elif (exc := done.exception()) is not None:
                job.future.set_exception(exc)
            else:
                result, seconds = cast(tuple[object, float], done.result())
                self._learn(seconds)
                job.future.set_result(result)
        self._start(loop)

    def _learn(self, seconds: float) -> None:
        mean = seconds if self._mean_seconds is None else 0.9 * self._mean_seconds + 0.1 * seconds
        self._mean_seconds = mean
        if self._pipeline_seconds and mean > 0:
            afford = int(self._threads * self._pipeline_seconds / mean)
            self._workers = max(self._min_workers, min(afford, self._most_workers))


MAX_NICENESS: Final = 19


def _timed(function: Callable[..., object], args: tuple[object, ...]) -> tuple[object, float]:
    """Run in a hash thread: the result and how long it took there."""
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


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
    BUSY = "busy"  # too many hashes waiting: answered without hashing


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
        self.guard = LoginGuard(
            settings.login_max_failures,
            settings.login_failure_window,
            settings.login_lockout_seconds,
            settings.login_account_slowdown_seconds,
            clock,
            settings.login_tracked_max,
        )
        self.throttle = self.guard.pairs
        self.scheduler = HashScheduler(
            self._hashers,
            settings.hash_workers,
            settings.login_hashes_in_flight,
            settings.hash_pipeline_depth,
            settings.hash_pipeline_seconds,
        )
        self._per_connection = settings.login_hashes_per_connection
        self._lockout_seconds = settings.login_lockout_seconds
        self._max_failures = settings.login_max_failures
        self._registered: set[str] = set()
        self._ids: dict[str, int] = {}
        self._names: dict[str, str] = {}  # name_key to the name as registered
        self._pending: set[str] = set()
        # Registrations hashed and waiting for the next group commit.
        self._to_commit: list[tuple[str, str, str, asyncio.Future[int | None]]] = []
        self._committer: asyncio.Task[None] | None = None
        # Verifying unknown names against a real hash keeps their timing like a
        # known name's, so failures do not reveal which accounts exist.
        self._decoy_hash = hash_password(os.urandom(8).hex(), self._params)

    async def load(self) -> None:
        # Keys made under an earlier identity rule are brought up to date first.
        clashes = await self._storage.call(self._storage.storage.refresh_name_keys, name_key)
        for name, other in clashes:
            log.warning(
                "names: account %s is the same name as %s under the identity rule; both"
                " kept, see 'python3 -m classcord check-names'",
                loggable(name),
                loggable(other),
            )
        self._registered = set(await self._storage.call(self._storage.storage.user_name_keys))
        rows = await self._storage.call(self._storage.storage.user_ids)
        self._ids = {name_key(name): account_id for account_id, name in rows}
        self._names = {name_key(name): name for _, name in rows}

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

    async def _hash(
        self,
        name: str,
        client: object | None,
        function: Callable[..., object],
        *args: object,
    ) -> object:
        """One hash through the fair scheduler; HashBusy past the bounds."""
        state = self.guard.client(client)
        if state is not None and state.in_flight >= self._per_connection:
            raise HashBusy
        if state is not None:
            state.in_flight += 1
        try:
            return await self.scheduler.run(self.guard.priority(name, client), function, *args)
        except HashBusy:
            self.guard.refused(name, client)  # a hammering client waits longer
            raise
        finally:
            if state is not None:
                state.in_flight -= 1

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

    async def complete_registration(
        self, name: str, password: str, client: object | None = None
    ) -> RegisterOutcome:
        """Hash and commit a claimed name; the caller releases the claim. ``client``
        stands for the connection (pass the Session). Past the hashing bounds this
        raises ClientError(texts.HASH_BUSY), an error line, without hashing."""
        try:
            stored = await self._hash(name, client, hash_password, password, self._params)
        except HashBusy:
            raise ClientError(texts.HASH_BUSY) from None
        assert isinstance(stored, str)
        key = name_key(name)
        added = await self._commit_user(name, key, stored)
        return RegisterOutcome.EXISTS if added is None else RegisterOutcome.OK

    async def _commit_user(self, name: str, key: str, stored: str) -> int | None:
        """Group commit: registrations that arrive while a commit is on the disk wait
        for the next one and share its fsync. Each still returns only once its own
        account is durably committed."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._to_commit.append((name, key, stored, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.get_running_loop().create_task(self._commit_waiting())
        return await future

    async def _commit_waiting(self) -> None:
        while self._to_commit:
            batch, self._to_commit = self._to_commit, []
            try:
                ids = await self._storage.call(
                    self._storage.storage.add_user_batch, [row[:3] for row in batch]
                )
            except BaseException as exc:
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (name, key, _, future), account_id in zip(batch, ids, strict=True):
                if account_id is not None:
                    # Here, not in the waiting caller: its connection may be gone, and
                    # the account it committed must still be known to logins.
                    self._registered.add(key)
                    self._ids[key] = account_id
                    self._names[key] = name
                if not future.done():
                    future.set_result(account_id)

    async def register(self, name: str, password: str) -> RegisterOutcome:
        if not self.claim(name):
            return RegisterOutcome.EXISTS
        try:
            return await self.complete_registration(name, password)
        finally:
            self.release(name)

    async def authenticate(
        self, name: str, password: str, client: object | None = None
    ) -> LoginOutcome:
        """``client`` stands for the connection (pass the Session): lockout and
        priority are per connection with it, per name without it."""
        if self.guard.refusal(name, client):
            return LoginOutcome.LOCKED
        if self.scheduler.would_refuse(self.guard.priority(name, client)):
            self.guard.refused(name, client)
            self.scheduler.refused += 1
            return LoginOutcome.BUSY
        record = await self._storage.call(self._storage.storage.get_user, name)
        stored = self._decoy_hash if record is None else record.password_hash
        try:
            ok = await self._hash(
                name, client, verify_password, password, stored, self._params.maxmem
            )
        except HashBusy:
            return LoginOutcome.BUSY
        if record is None:
            return self._failed(name, client, LoginOutcome.UNKNOWN_USER)
        if not ok:
            return self._failed(name, client, LoginOutcome.BAD_PASSWORD)
        self.guard.success(name, client)
        if not self._params.same_cost(hash_params(record.password_hash)):
            await self._rehash(record.name, password, client)
        return LoginOutcome.OK

    def _failed(self, name: str, client: object | None, outcome: LoginOutcome) -> LoginOutcome:
        if self.guard.failure(name, client):
            log.warning(
                "login lockout: user=%s locked for %.0f s after %d failed logins%s",
                loggable(name),
                self._lockout_seconds,
                self._max_failures,
                "" if client is None else " (for that connection only)",
            )
            return LoginOutcome.LOCKED
        return outcome

    def forget_stale(self) -> None:
        self.guard.forget_stale()

    async def _rehash(self, name: str, password: str, client: object | None) -> None:
        try:
            stored = await self._hash(name, client, hash_password, password, self._params)
        except HashBusy:
            return  # next login will do it
        assert isinstance(stored, str)
        await self._storage.call(self._storage.storage.set_password_hash, name, stored)
        log.info("password hash of user=%s upgraded to n=%d", name, self._params.n)

    def unlock(self, name: str) -> int:
        """``admin unlock NAME``: the account can be tried again at once (the exact
        name, and the registered spelling of the account NAME designates)."""
        cleared = self.guard.unlock(name)
        if name_key(name) != name:
            cleared += self.guard.unlock(name_key(name))
        return cleared

    def account_name(self, name: str) -> str | None:
        """The name as registered of the account ``name`` designates, or None."""
        return self._names.get(name_key(name))

    async def set_role(self, name: str, role: str) -> str | None:
        """Store an account's role; its registered name, None when there is none."""
        return await self._storage.call(self._storage.storage.set_role, name_key(name), role)

    async def roles(self) -> dict[str, str]:
        """name_key to role of every account that is not a student."""
        return dict(await self._storage.call(self._storage.storage.user_roles))

    def close(self) -> None:
        self._hashers.shutdown(wait=True, cancel_futures=True)


# --- import of the reference server's users.pkl ----------------------------------


class _DataOnlyUnpickler(pickle.Unpickler):
    """A dict of strings needs no class at all: refusing every global means loading
    a hostile pickle can never run code."""

    def find_class(self, module: str, name: str) -> type:
        raise pickle.UnpicklingError(f"forbidden object in pickle: {module}.{name}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def load_legacy_users(data: bytes) -> dict[str, str]:
    """The pickle as a dict of strings, or LegacyImportError in one line: whatever
    the file holds (other opcodes, a truncated or hostile file), no traceback."""
    try:
        loaded = _DataOnlyUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError) as exc:
        raise LegacyImportError(f"not a users.pkl file: {_one_line(exc)}") from None
    except (MemoryError, RecursionError):
        raise LegacyImportError("not a users.pkl file: too large or too deeply nested") from None
    except Exception as exc:
        raise LegacyImportError(
            f"not a users.pkl file: {type(exc).__name__}: {_one_line(exc)}"
        ) from None
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
    skipped_invalid: list[tuple[str, str]]  # (name, why)


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_legacy_user(name: str, password: str, max_name_chars: int) -> str | None:
    """Why this entry cannot become an account, or None: the server's own rules."""
    if _has_lone_surrogate(name) or not is_valid_name(name, max_name_chars):
        return "invalid name"
    if is_reserved_name(name):
        return "reserved name"
    if not password:
        return "empty password"
    if _has_lone_surrogate(password):
        return "password with a lone surrogate (cannot be typed or hashed)"
    return None


def import_legacy_users(path: Path, settings: Settings) -> ImportReport:
    """Hash every plain-text password of ``users.pkl`` into the database.

    Everything is validated before anything is written, then the accounts are
    inserted in ONE transaction: an import is complete or did not happen. Refused
    while a server holds the data folder (it would not know the new accounts, and a
    guest could take an imported name): stop it, import, start it again."""
    users = load_legacy_users(path.read_bytes())
    params = ScryptParams.from_settings(settings)
    invalid: list[tuple[str, str]] = []
    valid: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    existing: list[str] = []
    for name, password in sorted(users.items()):
        why = check_legacy_user(name, password, settings.max_name_chars)
        if why is not None:
            invalid.append((name, why))
        elif name_key(name) in seen:
            existing.append(name)  # same name as another entry under the name rule
        else:
            seen[name_key(name)] = name
            valid.append((name, password))
    prepare_data_dir(settings.data_path)
    lock = DataFolderLock.acquire(settings.data_path, purpose="import")
    try:
        storage = Storage(settings.database_path)
        try:
            rows = [
                (name, name_key(name), hash_password(password, params)) for name, password in valid
            ]
            imported = storage.add_users(rows)
        finally:
            storage.close()
    finally:
        lock.close()
    done = set(imported)
    existing += [name for name, _ in valid if name not in done]
    return ImportReport(imported, sorted(existing), invalid)
