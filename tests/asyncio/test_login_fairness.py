"""Login fairness and lockout (issue 11): bounded hashing with priority to
connections that have not failed; lockout per (account, connection) with a
per-account slowdown; other spellings never lock an account; admin unlock."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from classcord import texts
from classcord.accounts import (
    Accounts,
    LoginOutcome,
    RegisterOutcome,
    ScryptParams,
    hash_params,
)
from classcord.config import Settings
from classcord.errors import ClientError
from classcord.storage import Storage, StorageWorker
from tests.conftest import make_settings


class Conn:
    """Stands for one connection (the Session, in the server)."""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def make_accounts(tmp_path: Path, clock: Clock | None = None, **changes: object) -> Accounts:
    settings = make_settings(tmp_path / "data", **changes)
    worker = StorageWorker(Storage(settings.database_path))
    accounts = Accounts(settings, worker, clock=clock or time.monotonic)
    await accounts.load()
    return accounts


async def close(accounts: Accounts) -> None:
    accounts.close()
    await accounts._storage.close()


async def test_someone_failing_on_an_account_never_locks_its_owner(tmp_path: Path) -> None:
    clock = Clock()
    accounts = await make_accounts(tmp_path, clock)
    assert await accounts.register("alice", "right") is RegisterOutcome.OK
    attacker, owner = Conn(), Conn()
    outcomes = [await accounts.authenticate("alice", "bad", attacker) for _ in range(8)]
    assert outcomes[:4] == [LoginOutcome.BAD_PASSWORD] * 4
    assert set(outcomes[4:]) == {LoginOutcome.LOCKED}
    # The attacker's connection is locked out, even with the right password...
    assert await accounts.authenticate("alice", "right", attacker) is LoginOutcome.LOCKED
    # ...while the owner logs in at once.
    assert await accounts.authenticate("alice", "right", owner) is LoginOutcome.OK
    await close(accounts)


async def test_many_attacking_connections_are_slowed_on_the_account(tmp_path: Path) -> None:
    clock = Clock()
    accounts = await make_accounts(tmp_path, clock, login_account_slowdown_seconds=2.0)
    await accounts.register("alice", "right")
    attackers = [Conn() for _ in range(6)]
    for conn in attackers:  # one failure each: the account now has 6 recent failures
        assert await accounts.authenticate("alice", "bad", conn) is LoginOutcome.BAD_PASSWORD
    # Connections that already failed share one guess per slowdown period.
    second = [await accounts.authenticate("alice", "bad", conn) for conn in attackers]
    assert second.count(LoginOutcome.BAD_PASSWORD) == 1
    assert second.count(LoginOutcome.LOCKED) == 5
    clock.now += 2.0
    assert await accounts.authenticate("alice", "bad", attackers[1]) is LoginOutcome.BAD_PASSWORD
    # A connection that has not failed is never slowed: the owner gets in.
    assert await accounts.authenticate("alice", "right", Conn()) is LoginOutcome.OK
    await close(accounts)


async def test_failures_on_another_spelling_do_not_lock_the_account(tmp_path: Path) -> None:
    accounts = await make_accounts(tmp_path)
    await accounts.register("victim2", "right")
    conn = Conn()
    for _ in range(10):
        assert await accounts.authenticate("VICTIM2", "x", conn) in {
            LoginOutcome.UNKNOWN_USER,
            LoginOutcome.LOCKED,
        }
    # The same connection, and without any connection identity too.
    assert await accounts.authenticate("victim2", "right", conn) is LoginOutcome.OK
    for _ in range(10):
        await accounts.authenticate("VICTIM2", "x")
    assert await accounts.authenticate("victim2", "right") is LoginOutcome.OK
    await close(accounts)


async def test_admin_unlock_clears_a_lockout(tmp_path: Path) -> None:
    accounts = await make_accounts(tmp_path)
    await accounts.register("alice", "right")
    for _ in range(5):
        await accounts.authenticate("alice", "bad")
    assert await accounts.authenticate("alice", "right") is LoginOutcome.LOCKED
    assert accounts.unlock("alice") >= 1
    assert await accounts.authenticate("alice", "right") is LoginOutcome.OK
    await close(accounts)


async def test_past_the_bound_logins_are_answered_without_hashing(tmp_path: Path) -> None:
    accounts = await make_accounts(tmp_path, login_hashes_in_flight=2, scrypt_n=2**14)
    conns = [Conn() for _ in range(6)]
    outcomes = await asyncio.gather(
        *(accounts.authenticate(f"nobody{n}", "x", conn) for n, conn in enumerate(conns))
    )
    assert outcomes.count(LoginOutcome.BUSY) == 4
    assert outcomes.count(LoginOutcome.UNKNOWN_USER) == 2
    assert accounts.scheduler.refused == 4
    await close(accounts)


async def test_one_connection_has_at_most_its_share_of_hashes(tmp_path: Path) -> None:
    accounts = await make_accounts(tmp_path, scrypt_n=2**14)
    conn = Conn()
    outcomes = await asyncio.gather(
        accounts.authenticate("a", "x", conn), accounts.authenticate("b", "x", conn)
    )
    assert sorted(o.value for o in outcomes) == ["busy", "unknown-user"]
    await close(accounts)


async def test_a_busy_registration_is_a_clear_error(tmp_path: Path) -> None:
    accounts = await make_accounts(tmp_path, login_hashes_in_flight=1, scrypt_n=2**14)
    first = asyncio.ensure_future(accounts.authenticate("nobody", "x", Conn()))
    for _ in range(1000):  # until the first hash holds the only place
        if accounts.scheduler.load:
            break
        await asyncio.sleep(0.001)
    assert accounts.claim("zoe")
    with pytest.raises(ClientError, match="réessayez"):
        await accounts.complete_registration("zoe", "pw", Conn())
    accounts.release("zoe")
    await first
    assert texts.HASH_BUSY.startswith("Serveur occupé")
    await close(accounts)


async def test_the_decoy_hash_follows_the_current_scrypt_parameters(tmp_path: Path) -> None:
    accounts = await make_accounts(tmp_path, scrypt_n=2048, scrypt_r=4)
    assert hash_params(accounts._decoy_hash) == ScryptParams(2048, 4, 1)
    await close(accounts)


# The outcomes that cost a hash (a refusal or a lockout is answered without one).
HASHED = frozenset({LoginOutcome.UNKNOWN_USER, LoginOutcome.BAD_PASSWORD})


async def legit_latencies_under_attack(
    accounts: Accounts, attackers: int, warm_up: float, tries: int = 3
) -> tuple[list[float], int, list[int]]:
    """Correct logins' latencies while ``attackers`` connections keep failing, and
    how many attackers' hashes finished while each correct login waited."""
    stop = asyncio.Event()
    attempts = itertools.count()

    async def attack(n: int) -> None:
        conn = Conn()
        while not stop.is_set():
            next(attempts)
            outcome = await accounts.authenticate(f"ghost{n}", "wrong", conn)
            if outcome not in HASHED:
                # Refused or locked without a hash: tries again as fast as the
                # server's per-connection rate limit (rate_per_second, 20) lets it.
                await asyncio.sleep(1 / 20)

    tasks = [asyncio.ensure_future(attack(n)) for n in range(attackers)]
    # Until every attacker has failed once: before that they and a classmate are
    # alike (none has failed), and the classmate may wait behind the whole queue.
    await asyncio.sleep(warm_up)
    latencies = []
    overtaken = []
    for _ in range(tries):
        started, before = time.monotonic(), accounts.scheduler.completed
        outcome = await accounts.authenticate("alice", "right", Conn())
        latencies.append(time.monotonic() - started)
        overtaken.append(accounts.scheduler.completed - before - 1)  # less its own
        assert outcome is LoginOutcome.OK
    stop.set()
    await asyncio.gather(*tasks)
    return latencies, next(attempts), overtaken


@pytest.mark.slow
async def test_a_real_login_is_quick_while_600_connections_keep_failing(
    tmp_path: Path,
) -> None:
    # 2**12 costs ~10 ms a hash here: 600 queued hashes would be ~6 s in FIFO order.
    accounts = await make_accounts(tmp_path, scrypt_n=2**12)
    await accounts.register("alice", "right")
    latencies, attempts, overtaken = await legit_latencies_under_attack(accounts, 600, 2.0)
    shown = ", ".join(f"{t * 1000:.0f}" for t in latencies)
    print(f"legit login latency (ms) with 600 attackers: {shown} ({attempts} tries)")
    # Not a timing: the order. A classmate's login waits at most for the hashes
    # already in flight, never for the 600 queued behind them (FIFO would be ~600).
    in_flight = Settings().login_hashes_in_flight
    assert max(overtaken) <= in_flight + 2, overtaken
    await close(accounts)


async def test_a_flood_of_distinct_names_keeps_memory_bounded(tmp_path: Path) -> None:
    clock = Clock()
    accounts = await make_accounts(tmp_path, clock, login_tracked_max=50)
    await accounts.register("alice", "right")
    conn = Conn()
    guard = accounts.guard
    for n in range(500):
        guard.failure(f"ghost{n}", conn)
        guard.refused(f"ghost{n}", None)
        clock.now += 0.01
    assert len(guard._accounts) <= 50
    assert len(guard.pairs._accounts) <= 50
    assert all(len(a.failures) <= 6 and len(a.refusals) <= 5 for a in guard._accounts.values())
    assert await accounts.authenticate("alice", "right", Conn()) is LoginOutcome.OK
    await close(accounts)
