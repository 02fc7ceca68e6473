"""``classcord bench SCENARIO``: argument parsing and the run of each server.

``add_arguments`` and ``run`` are what the main CLI dispatches ``bench`` to; the
same pair backs ``python -m classcord.bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, Final

from classcord.bench import baseline, report
from classcord.bench.ircd import IrcdProcess, IrcdStartError
from classcord.bench.orchestrator import Monitor, WorkerPool
from classcord.bench.procstat import raise_nofile_limit
from classcord.bench.scenarios import SCENARIOS, Options, Run
from classcord.bench.spawn import (
    BENCH_SERVER_FLAGS,
    CHEAP_HASHING_FLAGS,
    KINDS,
    ServerStartError,
    dialect_of,
    is_valid_kind,
    make_server,
    not_applicable,
    split_kind,
)

Json = dict[str, Any]
LOG_TAIL_CHARS: Final = 2000
MAX_LOG_WARNINGS: Final = 50

# Scenario defaults: the targets (clients, senders, total rate, duration).
DEFAULTS: Final[dict[str, dict[str, Any]]] = {
    "fanout": {"clients": 100, "senders": 10, "rate": "5000", "duration": 10.0},
    "idle": {"clients": 10_000, "senders": 0, "rate": "0", "duration": 0.0},
    "stall": {"clients": 100, "senders": 10, "rate": "5000", "duration": 20.0},
    "storm": {"clients": 50, "senders": 50, "rate": "500", "duration": 0.0},
    "soak": {"clients": 200, "senders": 0, "rate": "0", "duration": 180.0},
}
HELP: Final = {
    "fanout": "N clients, S of them send global messages at a paced total rate",
    "idle": "many logged-in connections held at once; then a users request",
    "stall": "one client stops reading while the others chat",
    "storm": "many logins at once (default hashing) while others chat",
    "soak": "clients connect, chat and leave for minutes; memory over time",
}


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected rates like 1000,5000: {text!r}") from None
    if any(r < 0 for r in rates):
        raise argparse.ArgumentTypeError("rates cannot be negative")
    return rates


def _pair(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    try:
        return float(low), float(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX seconds: {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench_scenario", metavar="SCENARIO", required=True)
    for name, defaults in DEFAULTS.items():
        p = sub.add_parser(name, help=HELP[name], description=HELP[name])
        _common(p, defaults)
        _specific(p, name)
    base = sub.add_parser(
        "baseline-server",
        help="run the thread-per-client baseline server (a measurement device)",
        description=baseline.__doc__,
    )
    base.add_argument("--host", default="127.0.0.1")
    base.add_argument("--port", type=int, default=12346)


def _common(p: argparse.ArgumentParser, d: dict[str, Any]) -> None:
    target = p.add_argument_group("server under test")
    target.add_argument(
        "--spawn",
        default="classcord",
        help="servers to start on 127.0.0.1, one run each in this order: "
        "classcord, classcord-tls (through its TLS port), baseline, inspircd, ngircd "
        "(the Debian packages' IRC daemons, with a private configuration), or several "
        "with commas, e.g. classcord,inspircd,ngircd,baseline (default: classcord); "
        "classcord@DIR runs ClassCord from the source tree DIR (e.g. a worktree of "
        "an earlier commit) beside the current one",
    )
    target.add_argument("--host", default="127.0.0.1", help="with --port: attach to this host")
    target.add_argument("--port", type=int, default=0, help="attach to a running server instead")
    target.add_argument("--server-pid", type=int, help="attached server's pid, to read /proc")
    target.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for a spawned ClassCord (repeat; e.g. --server-arg=--hash-workers=2)",
    )
    target.add_argument(
        "--default-hashing",
        action="store_true",
        help="spawn ClassCord with its default scrypt cost (storm always does)",
    )
    load = p.add_argument_group("load")
    load.add_argument(
        "--clients", type=int, default=d["clients"], help="clients (default %(default)s)"
    )
    load.add_argument("--senders", type=int, default=d["senders"], help="sending clients")
    load.add_argument(
        "--rate",
        type=_rates,
        default=_rates(d["rate"]),
        help="total messages a second (0: as fast as possible); a list runs one step each, "
        "stopping at the first step not fully delivered",
    )
    load.add_argument("--duration", type=float, default=d["duration"], help="seconds of sending")
    load.add_argument("--probes", type=int, default=10, help="clients that measure latency")
    load.add_argument(
        "--auth",
        choices=("login", "guest", "register"),
        default="login",
        help="login: register then log in; guest: an empty announce; register: register"
        " only (idle: the registration throughput, without login presence)",
    )
    load.add_argument("--password", default="bench-password")
    load.add_argument("--prefix", default="bench", help="account and guest name prefix")
    load.add_argument("--workers", type=int, default=1, help="load generator processes")
    load.add_argument("--connect-concurrency", type=int, default=200)
    load.add_argument("--handshake-timeout", type=float, default=60.0)
    load.add_argument("--drain-timeout", type=float, default=10.0)
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the results as JSON")
    out.add_argument("--output", type=Path, help="also write the JSON results to this file")
    out.add_argument("--quiet", action="store_true", help="no progress display")
    out.add_argument("--repeat", type=int, default=1, help="rounds (each runs every server)")


def _specific(p: argparse.ArgumentParser, name: str) -> None:
    if name == "fanout":
        p.add_argument("--all-steps", action="store_true", help="do not stop at saturation")
    if name == "idle":
        p.add_argument("--hold", type=float, default=10.0, help="seconds to hold the clients")
        p.add_argument(
            "--no-room",
            dest="room",
            action="store_false",
            help="IRC peers: clients only register, joining no channel (by default they "
            "all join one, as ClassCord's clients all see each other's presence)",
        )
    if name == "stall":
        p.add_argument(
            "--stall-recv-buffer",
            type=int,
            default=4096,
            help="SO_RCVBUF of the stalled client (small: its kernel buffer fills fast)",
        )
    if name == "storm":
        p.add_argument("--storm", type=int, default=500, help="logins at once")
        p.add_argument("--storm-at", type=float, default=2.0, help="seconds into the chat")
        p.add_argument("--storm-after", type=float, default=2.0, help="chat seconds after it")
        p.add_argument("--chat-auth", choices=("login", "guest"), default="guest")
    if name == "soak":
        p.add_argument("--life", type=_pair, default=(2.0, 20.0), help="MIN,MAX client seconds")
        p.add_argument("--client-rate", type=float, default=1.0, help="messages/s per client")
        p.add_argument("--sample-every", type=float, default=5.0, help="memory sample seconds")
        p.add_argument("--accounts", type=int, default=0, help="accounts cycled (0: 2x clients)")


def options_from(args: argparse.Namespace) -> Options:
    name = args.bench_scenario
    extra: dict[str, Any] = {}
    if name == "fanout":
        extra["stop_at_saturation"] = not args.all_steps
    if name == "idle":
        extra.update(hold=args.hold, room=args.room)
    if name == "stall":
        extra["stall_recv_buffer"] = args.stall_recv_buffer
    if name == "storm":
        extra.update(
            storm=args.storm,
            storm_at=args.storm_at,
            storm_after=args.storm_after,
            chat_auth=args.chat_auth,
        )
    if name == "soak":
        extra.update(
            soak_life=args.life,
            soak_rate=args.client_rate,
            soak_sample_every=args.sample_every,
            soak_accounts=args.accounts,
        )
    return Options(
        scenario=name,
        clients=args.clients,
        senders=args.senders,
        rates=args.rate,
        duration=args.duration,
        probes=args.probes,
        auth=args.auth,
        password=args.password,
        prefix=args.prefix,
        workers=max(1, args.workers),
        connect_concurrency=args.connect_concurrency,
        handshake_timeout=args.handshake_timeout,
        drain_timeout=args.drain_timeout,
        **extra,
    )


def server_flags(kind: str, opts: Options, args: argparse.Namespace) -> list[str]:
    if split_kind(kind)[0] not in ("classcord", "classcord-tls"):
        return []
    flags = list(BENCH_SERVER_FLAGS)
    if opts.scenario != "storm" and not args.default_hashing:
        flags += CHEAP_HASHING_FLAGS
    return flags + list(args.server_arg)


def skipped(kind: str, opts: Options, rnd: int, rounds: int, reason: str) -> Json:
    """The document of a run that was not made: the scenario does not apply."""
    return {
        "scenario": opts.scenario,
        "server": kind,
        "round": rnd,
        "rounds": rounds,
        "result": {"not_applicable": reason},
    }


async def run_once(
    kind: str, opts: Options, args: argparse.Namespace, rnd: int, rounds: int
) -> Json:
    reason = not_applicable(kind, opts.scenario)
    if reason is not None:
        return skipped(kind, opts, rnd, rounds, reason)
    server = None
    host, port, pid = args.host, args.port, args.server_pid
    if kind != "attached":
        server = make_server(kind, server_flags(kind, opts, args))
        await asyncio.to_thread(server.start)
        host, port, pid = server.host, server.port, server.pid
        tls_cafile = server.tls_cafile
    else:
        tls_cafile = None
    label = f"{opts.scenario}/{kind}" + (f"#{rnd}" if rounds > 1 else "")
    monitor = Monitor(pid, label, None if args.quiet else sys.stderr)
    pool = WorkerPool(
        opts.workers, host, port, opts.password, opts.prefix, tls_cafile, dialect_of(kind)
    )
    load_before = report.machine()["loadavg"]
    try:
        await pool.start()
        monitor.attach(pool)
        monitor.start()
        result = await SCENARIOS[opts.scenario](Run(opts, pool, monitor, kind))
    finally:
        await monitor.stop()
        await pool.close()
        if server is not None:
            await asyncio.to_thread(server.stop)
    document: Json = {
        "scenario": opts.scenario,
        "server": kind,
        "round": rnd,
        "rounds": rounds,
        "target": f"{host}:{port}",
        "tls": tls_cafile is not None,
        "loadavg_before": load_before,
        "loadavg_after": report.machine()["loadavg"],
        "result": result,
    }
    if isinstance(server, IrcdProcess):
        document["server_command"] = server.command
        document["server_config"] = server.config_text
    if server is not None:
        document["server_command_flags"] = server_flags(kind, opts, args)
        log_text = server.read_log()
        document["server_log_tail"] = log_text[-LOG_TAIL_CHARS:]
        document["server_log_warnings"] = [
            line for line in log_text.splitlines() if " WARNING " in line or " ERROR " in line
        ][:MAX_LOG_WARNINGS]
        server.cleanup()
    return document


def run(args: argparse.Namespace) -> int:
    if args.bench_scenario == "baseline-server":
        return baseline.main(["--host", args.host, "--port", str(args.port)])
    opts = options_from(args)
    if args.port:
        kinds = ["attached"]
    else:
        kinds = [k.strip() for k in args.spawn.split(",") if k.strip()]
        unknown = [k for k in kinds if not is_valid_kind(k)]
        if unknown or not kinds:
            print(
                f"bench: --spawn takes {', '.join(KINDS)} or classcord@DIR (a source tree); "
                f"got {args.spawn!r}",
                file=sys.stderr,
            )
            return 2
    soft, hard = raise_nofile_limit()
    if soft < opts.clients + 100:
        print(
            f"bench: open-file limit {soft} (hard {hard}) is below {opts.clients} clients",
            file=sys.stderr,
        )
    rounds = max(1, args.repeat)
    results: list[Json] = []
    for rnd in range(1, rounds + 1):
        for kind in kinds:
            try:
                results.append(asyncio.run(run_once(kind, opts, args, rnd, rounds)))
            except (ServerStartError, IrcdStartError) as exc:
                print(f"bench: {exc}", file=sys.stderr)
                return 1
    compared = report.comparisons(results)
    saturation = {c["round"]: c["baseline_saturation_deliveries_per_second"] for c in compared}
    for result in results:
        # The issue's targets are ClassCord's: not the baseline's, nor the IRC peers'.
        if dialect_of(result["server"]) == "json" and result["server"] != "baseline":
            result["checks"] = report.checks(result, saturation.get(result["round"]))
    document = {
        "machine": report.machine(),
        "scenario": opts.scenario,
        "options": opts.to_json(),
        "runs": results,
        "comparisons": compared,
    }
    if args.output:
        args.output.write_text(report.to_json(document) + "\n")
    if args.json:
        print(report.to_json(document))
    else:
        print(report.table(results))
        for row in compared:
            ours = report.fmt(row["classcord_deliveries_per_second"])
            theirs = report.fmt(row["baseline_saturation_deliveries_per_second"])
            print(
                f"round {row['round']}: ClassCord {ours} deliveries/s, baseline saturation "
                f"{theirs}/s: ratio {report.fmt(row['ratio'])}; per server CPU-second: "
                f"{report.fmt(row['classcord_deliveries_per_cpu_second'])} vs "
                f"{report.fmt(row['baseline_deliveries_per_cpu_second'])}, "
                f"ratio {report.fmt(row['cpu_efficiency_ratio'])}"
            )
    return 0
