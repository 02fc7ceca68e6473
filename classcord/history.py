"""What was said: messages buffered in memory, committed in batches, read back.

A message is recorded the moment it is relayed and committed with the next flush
(every ``history_flush_ms``), so the chat never waits on the disk; a read flushes
first, so history always includes what was just said.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from classcord.storage import MessageRecord, StorageWorker

PendingHistory = Coroutine[Any, Any, None]


class History:
    def __init__(self, storage: StorageWorker | None) -> None:
        self._storage = storage
        self._pending: list[MessageRecord] = []

    def record(self, record: MessageRecord) -> None:
        self._pending.append(record)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        """Commit every message recorded so far; returns how many."""
        pending, self._pending = self._pending, []
        if pending and self._storage is not None:
            try:
                await self._storage.call(self._storage.storage.add_messages, pending)
            except Exception:
                # Keep them for the next flush rather than lose them.
                self._pending[:0] = pending
                raise
        return len(pending)

    async def latest(self, conversation: str, limit: int) -> list[MessageRecord]:
        """The last ``limit`` messages of a conversation, oldest first."""
        if self._storage is None:
            return []
        await self.flush()
        return await self._storage.call(self._storage.storage.history, conversation, limit)
