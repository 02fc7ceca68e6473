"""Shared fixtures: settings on a temporary data folder, an in-process server on
127.0.0.1 port 0 (composed exactly as ``serve`` composes it), and the skip-or-fail
rule for system tests.

The tests are grouped by ring (STYLE.md habit 7): ``core/`` is pure and takes
milliseconds, ``asyncio/`` drives sessions and in-process servers over recording
peers and loopback sockets, ``e2e/`` runs the real ``python3 -m classcord`` process,
and ``system/`` needs root, Docker or network namespaces. Helpers live in
``support/``. ``scripts/test.sh --fast`` runs the first two rings."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from classcord.cli import start_server
from classcord.config import Settings
from classcord.server import ClassCordServer

REQUIRE_SYSTEM_ENV = "CLASSCORD_REQUIRE_SYSTEM_TESTS"

# Cheap hashing for tests that are not about hashing cost (the default is 2**14).
FAST_SCRYPT_N = 1024


def require_system(reason: str) -> None:
    """Skip a test whose prerequisites are missing, except in CI, where a skipped
    system test would hide a broken install step: there it fails."""
    if os.environ.get(REQUIRE_SYSTEM_ENV) == "1":
        pytest.fail(f"system test prerequisite missing ({REQUIRE_SYSTEM_ENV}=1): {reason}")
    pytest.skip(reason)


def make_settings(data_dir: Path, **changes: object) -> Settings:
    base = Settings(host="127.0.0.1", port=0, data_dir=str(data_dir), scrypt_n=FAST_SCRYPT_N)
    return base.replace(**changes)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[ClassCordServer]:
    running = await start_server(settings)
    yield running
    await running.shutdown()
