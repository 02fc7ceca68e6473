"""kill -9 under load, then restart: acknowledged registrations survive, the database
is intact, and history loses at most what the commit policy allows (the messages of
the last ``--history-flush-ms`` interval)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from classcord.protocol import name_key
from classcord.storage import Storage
from tests.support.clients import LineClient

from .conftest import Spawn

FLUSH_MS = 200
# Scheduling slack on a busy machine on top of the flush interval: a message seen
# by a client this long before the kill must be on disk.
SLACK_S = 0.3
LOAD_SECONDS = 1.5
REGISTRARS = 8
SEND_INTERVAL_S = 0.004


async def test_kill_9_under_load_loses_nothing_acknowledged(spawn: Spawn, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    flags = ("--history-flush-ms", str(FLUSH_MS), "--rate-per-second", "10000",
             "--rate-burst", "10000")  # fmt: skip
    server = spawn(*flags, data_dir=data_dir)
    port = server.port
    loop = asyncio.get_running_loop()

    acknowledged: list[str] = []
    seen_at: dict[str, float] = {}
    sent: list[str] = []

    sender, observer = await LineClient.connect(port), await LineClient.connect(port)
    await sender.sign_in("sender")
    await observer.sign_in("observer")

    async def register_forever(k: int) -> None:
        client = await LineClient.connect(port)
        try:
            for i in range(100_000):
                name = f"r{k}x{i}"
                await client.send({"type": "register", "username": name, "password": "pw"})
                reply = await client.recv()
                assert reply == {"type": "register", "status": "ok"}, reply
                acknowledged.append(name)
        except (ConnectionError, TimeoutError, OSError):
            pass  # the server died mid-request
        finally:
            await client.close()

    async def send_forever() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            for i in range(1_000_000):
                content = f"m{i}"
                sent.append(content)
                await sender.send({"type": "message", "subtype": "global", "content": content})
                await asyncio.sleep(SEND_INTERVAL_S)

    async def observe_forever() -> None:
        with contextlib.suppress(ConnectionError, OSError, TimeoutError, ValueError):
            while True:
                got = await observer.recv(30)
                if got.get("type") == "message":
                    seen_at[got["content"]] = loop.time()

    tasks = [asyncio.ensure_future(register_forever(k)) for k in range(REGISTRARS)]
    tasks += [asyncio.ensure_future(send_forever()), asyncio.ensure_future(observe_forever())]
    await asyncio.sleep(LOAD_SECONDS)
    killed_at = loop.time()
    server.kill()  # SIGKILL: no shutdown, no final flush
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    await sender.close()
    await observer.close()

    assert len(acknowledged) > 50, "too little load to mean anything"
    assert len(seen_at) > 50, "too little load to mean anything"

    storage = Storage(data_dir / "classcord.db")
    try:
        assert storage.integrity_ok()
        keys = set(storage.user_name_keys())
        lost_users = [n for n in acknowledged if name_key(n) not in keys]
        assert not lost_users, f"registrations acknowledged but lost: {lost_users[:10]}"
        stored = {r.content for r in storage.history("#general", 1_000_000)}
    finally:
        storage.close()
    deadline = killed_at - FLUSH_MS / 1000 - SLACK_S
    must_have = [c for c, at in seen_at.items() if at < deadline]
    missing = [c for c in must_have if c not in stored]
    assert not missing, f"{len(missing)} messages older than the flush interval lost"
    assert stored <= set(sent)  # nothing invented

    # The same port is free again at once, and the accounts work.
    restarted = spawn(port=port, data_dir=data_dir)
    client = await LineClient.connect(restarted.port)
    for name in acknowledged[:: max(1, len(acknowledged) // 20)]:
        await client.send({"type": "login", "username": name, "password": "pw"})
        assert (await client.recv()) == {"type": "login", "status": "ok", "username": name}
    await client.close()
