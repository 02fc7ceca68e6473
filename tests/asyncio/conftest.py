"""Ring 2 fixtures shared by the session tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.harness import Harness


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    """Real sessions, hub and accounts (loaded) over recording peers."""
    h = Harness(tmp_path)
    await h.accounts.load()
    yield h
    await h.close()
