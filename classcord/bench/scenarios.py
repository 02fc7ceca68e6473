"""The scenarios: fanout, idle, stall, storm and soak, each one async function.

A scenario gets a connected ``Run`` (server address, workers, monitor) and returns a
JSON-able dict of results. Numbers are raw; ``report`` turns them into a table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from classcord.bench.orchestrator import MIB, Monitor, WorkerPool
from classcord.bench.procstat import ProcSample, ProcWatch
from classcord.bench.stats import Histogram, LatencySummary

Json = dict[str, Any]
START_DELAY: Final = 0.5  # senders start together this long after the command
DRAIN_POLL: Final = 0.1
SEND_CAP_SECONDS: Final = 3600.0  # "until stopped" for storm senders


@dataclass(frozen=True)
class Options:
    """Everything a scenario may use; the CLI fills it, tests build it directly."""

    scenario: str = "fanout"
    clients: int = 100
    senders: int = 10
    rates: tuple[float, ...] = (5000.0,)  # total messages a second, one step each
    duration: float = 10.0
    probes: int = 10
    auth: str = "login"
    password: str = "bench-password"  # noqa: S105 - throwaway bench accounts
    prefix: str = "bench"
    workers: int = 1
    connect_concurrency: int = 200
    handshake_timeout: float = 60.0
    drain_timeout: float = 10.0
    drain_idle: float = 3.0
    tick: float = 0.005
    stop_at_saturation: bool = True
    # idle
    hold: float = 10.0
    room: bool = True  # IRC peers: idle clients join the one room (False: registered only)
    # stall
    stall_recv_buffer: int = 4096
    # storm
    storm: int = 500
    storm_at: float = 2.0
    storm_after: float = 2.0
    chat_auth: str = "guest"
    # soak
    soak_life: tuple[float, float] = (2.0, 20.0)
    soak_rate: float = 1.0
    soak_sample_every: float = 5.0
    soak_accounts: int = 0  # 0: twice the concurrent clients
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> Json:
        return asdict(self)


@dataclass
class Run:
    """What a scenario works with."""

    opts: Options
    pool: WorkerPool
    monitor: Monitor
    server_kind: str


def spread(count: int, among: int) -> list[int]:
    """``count`` indices spread evenly over ``range(among)``."""
    count = max(0, min(count, among))
    return sorted({(k * among) // count for k in range(count)}) if count else []


def cpu_between(watch: ProcWatch, start: ProcSample | None) -> float | None:
    return watch.cpu_percent_since(start)


async def connect(
    run: Run,
    roles: dict[str, list[int]],
    *,
    auth: str,
    probes: list[int] | None = None,
    concurrency: int | None = None,
) -> Json:
    """Open clients in every worker; returns counts, wall time and handshake latency."""
    pool = run.pool
    started = time.monotonic()
    per_worker: list[dict[str, list[int]]] = [{} for _ in range(pool.count)]
    for role, indices in roles.items():
        for w, part in enumerate(pool.split(indices)):
            if part:
                per_worker[w][role] = part
    probe_parts = pool.split(probes or [])
    cmds = [
        {
            "cmd": "connect",
            "roles": per_worker[w],
            "probes": probe_parts[w],
            "auth": auth,
            "concurrency": max(1, (concurrency or run.opts.connect_concurrency) // pool.count),
            "timeout": run.opts.handshake_timeout,
            "recv_buffer": run.opts.stall_recv_buffer,
            "room": run.opts.room,
        }
        for w in range(pool.count)
    ]
    replies = await pool.call_each(cmds)
    hist = Histogram.merged(Histogram.from_json(r["handshake"]) for r in replies)
    return {
        "ok": sum(r["ok"] for r in replies),
        "failed": sum(r["failed"] for r in replies),
        "seconds": round(time.monotonic() - started, 3),
        "per_client_ms": asdict(LatencySummary.of(hist)),
        "errors": [e for r in replies for e in r.get("error_samples", [])][:5],
    }


async def settle(run: Run) -> Json:
    started = time.monotonic()
    replies = await run.pool.call_all({"cmd": "settle", "timeout": run.opts.handshake_timeout})
    return {
        "ok": sum(r["ok"] for r in replies),
        "failed": sum(r["failed"] for r in replies),
        "seconds": round(time.monotonic() - started, 3),
    }


async def collect(run: Run) -> Json:
    """Merge every worker's statistics."""
    replies = await run.pool.call_all({"cmd": "stats"})
    latency: dict[str, Histogram] = {}
    for reply in replies:
        for label, data in reply["latency"].items():
            latency.setdefault(label, Histogram()).merge(Histogram.from_json(data))
    roles: dict[str, dict[str, int]] = {}
    for reply in replies:
        for role, row in reply["roles"].items():
            into = roles.setdefault(role, {})
            for key, value in row.items():
                into[key] = into.get(key, 0) + value
    reasons: dict[str, int] = {}
    for reply in replies:
        for reason, n in reply["close_reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    return {
        "latency": latency,
        "roles": roles,
        "loop_lag": Histogram.merged(Histogram.from_json(r["loop_lag"]) for r in replies),
        "first_rx": min((r["first_rx"] for r in replies if r["first_rx"]), default=0.0),
        "last_rx": max((r["last_rx"] for r in replies), default=0.0),
        "stall_closed": {k: v for r in replies for k, v in r["stall_closed"].items()},
        "stalled_at": {k: v for r in replies for k, v in r["stalled_at"].items()},
        "watch_found": {k: v for r in replies for k, v in r["watch_found"].items()},
        "retired": {
            key: sum(r["retired"].get(key, 0) for r in replies) for key in ("delivered", "errors")
        },
        "error_samples": [e for r in replies for e in r["error_samples"]][:5],
        "close_reasons": reasons,
        "connect_failures": sum(r["connect_failures"] for r in replies),
    }


async def send_phase(run: Run, senders: list[int], total_rate: float, duration: float) -> Json:
    """All workers' senders start together; returns when every one has finished."""
    pool = run.pool
    start_at = time.monotonic() + START_DELAY
    per_sender = total_rate / len(senders) if total_rate > 0 else 0.0
    parts = pool.split(senders)
    cmds = [
        {
            "cmd": "send",
            "senders": parts[w],
            "rate": per_sender,
            "start_at": start_at,
            "duration": duration,
            "tick": run.opts.tick,
        }
        for w in range(pool.count)
    ]
    replies = await pool.call_each(cmds)
    per: dict[str, int] = {}
    for reply in replies:
        per.update(reply["per_sender"])
    return {
        "start_at": start_at,
        "ended": max(r["ended"] for r in replies),
        "sent": sum(r["sent"] for r in replies),
        "per_sender": per,
    }


async def drain(run: Run, expected: int, baseline: int, role: str = "chat") -> Json:
    """Wait until ``expected`` deliveries arrived (beyond ``baseline``), or they stop."""
    opts = run.opts
    started = time.monotonic()
    last_count, last_change = -1, started
    while True:
        await asyncio.sleep(DRAIN_POLL)
        got = run.pool.delivered(role) - baseline
        now = time.monotonic()
        if got != last_count:
            last_count, last_change = got, now
        if got >= expected:
            return {"complete": True, "seconds": round(now - started, 3)}
        if now - last_change >= opts.drain_idle or now - started >= opts.drain_timeout:
            return {"complete": False, "seconds": round(now - started, 3)}


def latency_json(hist: Histogram) -> Json:
    return asdict(LatencySummary.of(hist))


def rss_mb(sample: ProcSample | None) -> float | None:
    return round(sample.rss_bytes / MIB, 1) if sample else None


def server_usage(run: Run, start: ProcSample | None) -> Json:
    watch = run.monitor.server
    end = watch.last
    return {
        "cpu_seconds": round(end.cpu_seconds - start.cpu_seconds, 2) if start and end else None,
        "system_cpu_seconds": round(end.system_seconds - start.system_seconds, 2)
        if start and end
        else None,
        "rss_mb_start": rss_mb(start),
        "rss_mb_end": rss_mb(watch.last),
        "rss_mb_peak": round(watch.peak_rss / MIB, 1) if watch.peak_rss else None,
        "cpu_percent": cpu_between(watch, start),
        "threads": watch.last.threads if watch.last else None,
    }


def loadgen_usage(run: Run, starts: list[ProcSample | None]) -> Json:
    return {
        "workers": run.pool.count,
        "cpu_percent": [
            w.cpu_percent_since(s) for w, s in zip(run.monitor.workers, starts, strict=True)
        ],
    }


def expected_global(per_sender: dict[str, int], receivers: set[int]) -> int:
    """Each global message reaches every receiver but its sender (no echo)."""
    return sum(n * (len(receivers) - (int(i) in receivers)) for i, n in per_sender.items())


# --- fanout ---------------------------------------------------------------------


async def fanout(run: Run) -> Json:
    opts = run.opts
    everyone = list(range(opts.clients))
    run.monitor.phase = "connect"
    handshake = await connect(
        run, {"chat": everyone}, auth=opts.auth, probes=spread(opts.probes, opts.clients)
    )
    run.monitor.phase = "settle"
    settled = await settle(run)
    senders = spread(opts.senders, opts.clients)
    steps: list[Json] = []
    for rate in opts.rates:
        step = await measured_send(run, senders, rate, opts.duration)
        steps.append(step)
        if opts.stop_at_saturation and not step["all_delivered"]:
            break
    return {"handshake": handshake, "settle": settled, "steps": steps}


async def measured_send(run: Run, senders: list[int], rate: float, duration: float) -> Json:
    """One paced step: send, drain, and measure deliveries and latency."""
    pool = run.pool
    await pool.call_all({"cmd": "reset"})
    before = await collect(run)
    base = before["roles"].get("chat", {}).get("delivered", 0)
    receivers_alive = await alive_chat(run)
    server_start, worker_starts = run.monitor.mark()
    run.monitor.phase = f"send {rate:g}/s"
    sent = await send_phase(run, senders, rate, duration)
    expected = expected_global(sent["per_sender"], receivers_alive)
    run.monitor.phase = "drain"
    drained = await drain(run, expected, base)
    after = await collect(run)
    run.monitor.tick()
    received = after["roles"].get("chat", {}).get("delivered", 0) - base
    span = (after["last_rx"] - sent["start_at"]) if after["last_rx"] else 0.0
    send_span = sent["ended"] - sent["start_at"]
    lag = after["loop_lag"]
    server = server_usage(run, server_start)
    per_second = round(received / span, 1) if span > 0 else None
    cpu_seconds = server["cpu_seconds"]
    return {
        "offered_rate": rate,
        "senders": len(senders),
        "receivers": len(receivers_alive),
        "messages_sent": sent["sent"],
        "send_seconds": round(send_span, 3),
        "achieved_send_rate": round(sent["sent"] / send_span, 1) if send_span else None,
        "deliveries_expected": expected,
        "deliveries_received": received,
        "all_delivered": received >= expected,
        "deliveries_per_second": per_second,
        # Deliveries per second of server CPU: what one core could carry, the fair
        # measure of a single-threaded server's capacity when the load generator,
        # sharing the machine, cannot push it to saturation.
        "deliveries_per_cpu_second": round(received / cpu_seconds) if cpu_seconds else None,
        "drain": drained,
        "latency_ms": latency_json(Histogram.merged(after["latency"].values())),
        "errors": after["roles"].get("chat", {}).get("errors", 0)
        - before["roles"].get("chat", {}).get("errors", 0),
        "disconnected": after["roles"].get("chat", {}).get("closed", 0),
        "close_reasons": after["close_reasons"],
        "server": server,
        "loadgen": {
            **loadgen_usage(run, worker_starts),
            "tick_lag_ms": latency_json(lag),
        },
    }


async def alive_chat(run: Run) -> set[int]:
    """Indices of the chat clients currently open (asked from the workers)."""
    alive: set[int] = set()
    for reply in await run.pool.call_all({"cmd": "alive", "role": "chat"}):
        alive.update(reply["indices"])
    return alive


# --- idle -------------------------------------------------------------------------


async def idle(run: Run) -> Json:
    opts = run.opts
    everyone = list(range(opts.clients))
    server_start, worker_starts = run.monitor.mark()
    run.monitor.phase = "connect"
    handshake = await connect(run, {"chat": everyone}, auth=opts.auth)
    run.monitor.phase = "settle"
    settled = await settle(run)
    run.monitor.phase = "hold"
    await asyncio.sleep(opts.hold)
    run.monitor.phase = "users"
    alive = sorted(await alive_chat(run))
    users: Json = {"ok": False, "error": "no client left"}
    if alive:
        asker = alive[0]
        users = await run.pool.call(run.pool.worker_of(asker), {"cmd": "roster", "client": asker})
    pinged = await settle(run)
    run.monitor.tick()
    return {
        "loadgen": loadgen_usage(run, worker_starts),
        "handshake": handshake,
        "settle": settled,
        "held_seconds": opts.hold,
        "room": opts.room,
        "clients_open": len(alive),
        "users_request": users,
        "ping_after_hold": pinged,
        "server": server_usage(run, server_start),
    }


# --- stall --------------------------------------------------------------------------


async def stall(run: Run) -> Json:
    """One extra client stops reading while the others chat. The server should drop
    it (it leaves the presence list, so an observer sees ``offline``); the others
    should not notice."""
    opts = run.opts
    chatters = list(range(opts.clients))
    staller = opts.clients
    senders = spread(opts.senders, opts.clients)
    observer = next((i for i in chatters if i not in senders), chatters[0])
    run.monitor.phase = "connect"
    handshake = await connect(
        run,
        {"chat": chatters, "staller": [staller]},
        auth=opts.auth,
        probes=spread(opts.probes, opts.clients),
    )
    run.monitor.phase = "settle"
    settled = await settle(run)
    watch = {"departed": f"{opts.prefix}{staller}", "guest": opts.auth == "guest"}
    await run.pool.call(run.pool.worker_of(observer), {"cmd": "watch", "client": observer, **watch})
    await run.pool.call(run.pool.worker_of(staller), {"cmd": "stall", "clients": [staller]})
    step = await measured_send(run, senders, opts.rates[0], opts.duration)
    stats = await collect(run)
    stalled_at = stats["stalled_at"].get(str(staller), 0.0)
    dropped_at = stats["watch_found"].get(str(observer), 0.0)
    reset_after = stats["stall_closed"].get(str(staller))
    last_rx = stats["last_rx"]
    return {
        "handshake": handshake,
        "settle": settled,
        "step": step,
        "staller_disconnected": bool(dropped_at),
        "staller_disconnected_after_s": round(dropped_at - stalled_at, 2) if dropped_at else None,
        "staller_tcp_closed_after_s": round(reset_after, 2) if reset_after else None,
        "last_delivery_after_s": round(last_rx - stalled_at, 2) if last_rx else None,
    }


# --- storm ----------------------------------------------------------------------------


async def storm(run: Run) -> Json:
    opts = run.opts
    chatters = list(range(opts.clients))
    stormers = list(range(opts.clients, opts.clients + opts.storm))
    run.monitor.phase = "prepare"
    prepared = await connect(run, {"prep": stormers}, auth="register")
    await run.pool.call_all({"cmd": "drop", "role": "prep"})
    run.monitor.phase = "connect"
    handshake = await connect(
        run, {"chat": chatters}, auth=opts.chat_auth, probes=spread(opts.probes, opts.clients)
    )
    settled = await settle(run)
    senders = spread(opts.senders, opts.clients)
    await run.pool.call_all({"cmd": "reset", "label": "before"})
    receivers_alive = await alive_chat(run)
    server_start, worker_starts = run.monitor.mark()
    run.monitor.phase = "chat"
    sending = asyncio.ensure_future(send_phase(run, senders, opts.rates[0], SEND_CAP_SECONDS))
    await asyncio.sleep(START_DELAY + opts.storm_at)
    run.monitor.phase = "storm"
    await run.pool.call_all({"cmd": "mark", "label": "storm"})
    stormed = await connect(run, {"storm": stormers}, auth="login-only", concurrency=opts.storm)
    await run.pool.call_all({"cmd": "mark", "label": "after"})
    run.monitor.phase = "after"
    await asyncio.sleep(opts.storm_after)
    await run.pool.call_all({"cmd": "stop_send"})
    sent = await sending
    expected = expected_global(sent["per_sender"], receivers_alive)
    run.monitor.phase = "drain"
    drained = await drain(run, expected, 0)
    after = await collect(run)
    run.monitor.tick()
    chat = after["roles"].get("chat", {})
    return {
        "prepare": prepared,
        "handshake": handshake,
        "settle": settled,
        "storm_logins": stormed,
        "messages_sent": sent["sent"],
        "offered_rate": opts.rates[0],
        "deliveries_expected": expected,
        "deliveries_received": chat.get("delivered", 0),
        "all_delivered": chat.get("delivered", 0) >= expected,
        "drain": drained,
        "latency_ms": {label: latency_json(h) for label, h in after["latency"].items()},
        "errors": chat.get("errors", 0),
        "server": server_usage(run, server_start),
        "loadgen": {
            **loadgen_usage(run, worker_starts),
            "tick_lag_ms": latency_json(after["loop_lag"]),
        },
    }


# --- soak --------------------------------------------------------------------------------


async def soak(run: Run) -> Json:
    opts = run.opts
    accounts = opts.soak_accounts or 2 * opts.clients
    server_start, worker_starts = run.monitor.mark()
    run.monitor.phase = "soak"
    parts = run.pool.split(list(range(accounts)))
    slots = [len(p) * opts.clients // accounts for p in parts]
    cmds = [
        {
            "cmd": "soak",
            "indices": parts[w],
            "concurrent": max(1, slots[w]),
            "duration": opts.duration,
            "life_min": opts.soak_life[0],
            "life_max": opts.soak_life[1],
            "rate": opts.soak_rate,
            "seed": w,
            "timeout": opts.handshake_timeout,
        }
        for w in range(run.pool.count)
    ]
    replies = await run.pool.call_each(cmds)
    run.monitor.phase = "drain"
    await asyncio.sleep(1.0)
    stats = await collect(run)
    run.monitor.tick()
    series = [row for row in run.monitor.timeline if row["rss_mb"] is not None]
    return {
        "sessions": sum(r["sessions"] for r in replies),
        "concurrent": opts.clients,
        "messages_sent": run.pool.totals()["sent"],
        "deliveries_received": stats["retired"]["delivered"]
        + sum(row.get("delivered", 0) for row in stats["roles"].values()),
        "errors": stats["retired"]["errors"],
        "connect_failures": stats["connect_failures"],
        "error_samples": stats["error_samples"],
        "latency_ms": latency_json(Histogram.merged(stats["latency"].values())),
        "memory": soak_memory(series, opts.soak_sample_every),
        "server": server_usage(run, server_start),
        "loadgen": loadgen_usage(run, worker_starts),
    }


def soak_memory(series: list[Json], every: float) -> Json:
    """Memory over time, thinned to one row per ``every`` seconds, and its trend."""
    thinned: list[Json] = []
    for row in series:
        if not thinned or row["t"] - thinned[-1]["t"] >= every:
            thinned.append(row)
    second_half = [r for r in series if r["t"] >= series[-1]["t"] / 2] if series else []
    return {
        "series": thinned,
        "rss_mb_first": series[0]["rss_mb"] if series else None,
        "rss_mb_last": series[-1]["rss_mb"] if series else None,
        "rss_mb_max": max((r["rss_mb"] for r in series), default=None),
        "slope_mb_per_min_second_half": slope_per_minute(second_half),
    }


def slope_per_minute(rows: list[Json]) -> float | None:
    """Least-squares slope of RSS against time, in MB a minute."""
    if len(rows) < 3:
        return None
    xs = [r["t"] for r in rows]
    ys = [r["rss_mb"] for r in rows]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if not var:
        return None
    cov = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    return round(60.0 * float(cov) / float(var), 3)


SCENARIOS: Final[dict[str, Callable[[Run], Awaitable[Json]]]] = {
    "fanout": fanout,
    "idle": idle,
    "stall": stall,
    "storm": storm,
    "soak": soak,
}
