"""What was said: messages buffered in memory, committed in batches, read back.

A message is recorded the moment it is relayed and committed with the next flush
(every ``history_flush_ms``), so the chat never waits on the disk; a read flushes
first, so history always includes what was just said.

``flush`` never raises, and one record can never block the others:

- a batch that SQLite refuses for its *data* (a lone surrogate, a value it cannot
  bind) is retried record by record in one transaction; the records it still
  refuses are dropped and logged, the rest are written;
- any other failure is the *environment*'s (disk full, read-only file, database
  locked or damaged: ``sqlite3.OperationalError``, ``OSError``, ...) and keeps every
  record in memory; it retries
  with exponential back-off (``history_retry_initial_seconds`` doubling up to
  ``history_retry_max_seconds``). Such an episode is logged twice: once when it
  starts (reason, messages pending) and once when it ends (how long, how many
  written).

What waits in memory is bounded (``history_max_pending``): past it the oldest are
dropped, logged once per episode.

A read during an outage answers with what the database gave before and what is
still in memory, never an internal error. ``status()`` is what the health check
reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from classcord.storage import DATA_ERRORS, MessageRecord, StorageWorker

PendingHistory = Coroutine[Any, Any, None]

log = logging.getLogger("classcord.history")


@dataclass(frozen=True, slots=True)
class HistoryStatus:
    pending: int
    oldest_pending_seconds: float
    failing_since_seconds: float | None
    last_error: str | None
    dropped: int
    written: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "oldest_pending_seconds": round(self.oldest_pending_seconds, 3),
            "failing_for_seconds": None
            if self.failing_since_seconds is None
            else round(self.failing_since_seconds, 3),
            "last_error": self.last_error,
            "dropped": self.dropped,
            "written": self.written,
        }


class History:
    def __init__(
        self,
        storage: StorageWorker | None,
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
        read_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        max_pending: int = 200_000,
    ) -> None:
        self._max_pending = max_pending
        self._overflow_logged = False
        self._storage = storage
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._read_timeout = read_timeout
        self._clock = clock
        # (monotonic time recorded, record), oldest first.
        self._pending: list[tuple[float, MessageRecord]] = []
        self._in_flight: list[tuple[float, MessageRecord]] = []
        self._lock = asyncio.Lock()
        self._failing_since: float | None = None
        self._written_in_episode = 0
        self._retry_delay = 0.0
        self._next_retry = 0.0
        self._last_error: str | None = None
        self.dropped = 0
        self.written = 0

    def record(self, record: MessageRecord) -> None:
        self._pending.append((self._clock(), record))
        if len(self._pending) > self._max_pending:
            # A long outage must not take the memory with it: the oldest go first,
            # a tenth at a time so that this stays cheap.
            cut = max(1, self._max_pending // 10)
            del self._pending[:cut]
            self.dropped += cut
            if not self._overflow_logged:
                self._overflow_logged = True
                log.error(
                    "history: %d messages wait in memory (history_max_pending): dropping"
                    " the oldest until the database takes them again",
                    self._max_pending,
                )

    @property
    def pending_count(self) -> int:
        return len(self._pending) + len(self._in_flight)

    @property
    def failing(self) -> bool:
        return self._failing_since is not None

    def status(self) -> HistoryStatus:
        now = self._clock()
        times = [entry[0] for entry in self._in_flight[:1] + self._pending[:1]]
        oldest = now - min(times) if times else 0.0
        return HistoryStatus(
            pending=self.pending_count,
            oldest_pending_seconds=max(0.0, oldest),
            failing_since_seconds=None
            if self._failing_since is None
            else now - self._failing_since,
            last_error=self._last_error,
            dropped=self.dropped,
            written=self.written,
        )

    async def flush(self, force: bool = False) -> int:
        """Commit every message recorded so far; returns how many were written.

        Never raises. While an outage backs off, does nothing until the next retry
        time unless ``force`` (shutdown's last attempt). Shielded: cancelling the
        caller (a stopping flush task, a timed-out read) never loses a batch."""
        return await asyncio.shield(self._flush(force))

    async def _flush(self, force: bool) -> int:
        if self._storage is None:
            count = len(self._pending)
            self._pending.clear()
            return count
        async with self._lock:
            if not self._pending:
                return 0
            if self.failing and not force and self._clock() < self._next_retry:
                return 0
            batch, self._pending = self._pending, []
            self._in_flight = batch
            try:
                written, kept = await self._write(batch)
            finally:
                self._in_flight = []
            self._pending[:0] = kept
            self.written += written
            if kept:
                return written
            if self.failing:
                self._recovered(written)
            return written

    async def _write(
        self, batch: list[tuple[float, MessageRecord]]
    ) -> tuple[int, list[tuple[float, MessageRecord]]]:
        """(records written, records kept for a retry)."""
        assert self._storage is not None
        add = self._storage.storage.add_messages
        try:
            await self._storage.call(add, [record for _, record in batch])
        except DATA_ERRORS as exc:  # a record SQLite cannot store: find it
            log.warning(
                "history: a batch of %d messages was refused (%s); writing them one by one"
                " to find the bad ones",
                len(batch),
                _reason(exc),
            )
        except Exception as exc:  # the disk, the file, the lock: keep them all
            self._failed(exc, len(batch))
            return 0, batch
        else:
            self._written_in_episode += len(batch)
            return len(batch), []
        try:
            refused = await self._storage.call(
                self._storage.storage.add_messages_isolating, [record for _, record in batch]
            )
        except Exception as exc:  # the disk, the file, the lock: keep them all
            self._failed(exc, len(batch))
            return 0, batch
        now = self._clock()
        for index, reason in refused:
            recorded, record = batch[index]
            self.dropped += 1
            log.error(
                "history: dropped a message SQLite cannot store (%s): conversation=%r"
                " from=%r recorded %.1f s ago",
                reason,
                record.conversation[:80],
                record.sender[:80],
                now - recorded,
            )
        written = len(batch) - len(refused)
        self._written_in_episode += written
        return written, []

    def _failed(self, exc: BaseException, count: int) -> None:
        now = self._clock()
        self._last_error = _reason(exc)
        if self._failing_since is None:
            self._failing_since = now
            self._written_in_episode = 0
            self._retry_delay = self._retry_initial
            log.error(
                "history: cannot write messages (%s); keeping %d in memory, retrying with"
                " back-off up to every %.0f s",
                self._last_error,
                count + len(self._pending),
                self._retry_max,
            )
        else:
            self._retry_delay = min(self._retry_delay * 2, self._retry_max)
        self._next_retry = now + self._retry_delay

    def _recovered(self, written: int) -> None:
        assert self._failing_since is not None
        log.warning(
            "history: writing again after %.1f s; %d messages written since the failure began",
            self._clock() - self._failing_since,
            self._written_in_episode,
        )
        self._failing_since = None
        self._last_error = None
        self._retry_delay = 0.0
        self._overflow_logged = False

    @property
    def next_retry_in(self) -> float:
        return max(0.0, self._next_retry - self._clock()) if self.failing else 0.0

    async def delete_latest(self, sender: str, count: int) -> list[tuple[str, str]]:
        """Remove ``sender``'s latest ``count`` channel messages, wherever they are
        (still in memory during an outage, or stored); (timestamp, channel) of each,
        oldest first. All or nothing: when the database refuses, nothing is removed
        and the error is raised for the caller to report."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), self._read_timeout)
        async with self._lock:  # no batch in flight: what is pending stays put
            # The newest are the ones still in memory.
            in_memory = [
                index
                for index in range(len(self._pending) - 1, -1, -1)
                if self._pending[index][1].sender == sender
                and self._pending[index][1].channel is not None
            ][:count]
            stored: list[tuple[str, str]] = []
            if self._storage is not None and len(in_memory) < count:
                stored = await self._storage.call(
                    self._storage.storage.delete_latest, sender, count - len(in_memory)
                )
            removed = [self._pending[i][1] for i in reversed(in_memory)]
            for index in in_memory:  # from the end: the indices stay valid
                del self._pending[index]
        return stored + [(record.timestamp, record.channel or "") for record in removed]

    async def latest(self, conversation: str, limit: int) -> list[MessageRecord]:
        """The last ``limit`` messages of a conversation, oldest first: what the
        database has, then what is still waiting in memory."""
        if self._storage is None:
            return []
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), self._read_timeout)
        stored: list[MessageRecord] = []
        try:
            stored = await asyncio.wait_for(
                self._storage.call(self._storage.storage.history, conversation, limit),
                self._read_timeout,
            )
        except Exception as exc:
            log.warning(
                "history: read of %r answered from memory only (%s)", conversation[:80], exc
            )
        waiting = [
            record
            for _, record in self._in_flight + self._pending
            if record.conversation == conversation
        ]
        merged = stored + waiting
        return merged[-limit:]


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]
