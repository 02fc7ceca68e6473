"""Results for people (a table) and for scripts (JSON), and the issue's targets."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

Json = dict[str, Any]
Row = tuple[str, str]

FANOUT_P99_MS: Final = 50.0
FANOUT_RATIO: Final = 10.0
FANOUT_TARGET_RATE: Final = 5000.0
IDLE_RSS_MB: Final = 100.0
STALL_P99_MS: Final = 50.0
STORM_P99_MS: Final = 100.0


def machine() -> Json:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_mb": mem_kb // 1024,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        text = f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return text + unit


def _latency_rows(prefix: str, lat: Json) -> list[Row]:
    return [
        (
            f"{prefix}latency p50/p90/p99/max",
            "/".join(fmt(lat.get(k)) for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")) + " ms",
        )
    ]


def _server_rows(server: Json) -> list[Row]:
    return [
        ("server RSS start/peak/end", "/".join(
            fmt(server.get(k)) for k in ("rss_mb_start", "rss_mb_peak", "rss_mb_end")
        ) + " MB"),
        ("server CPU", fmt(server.get("cpu_percent"), " %")),
        ("server threads", fmt(server.get("threads"))),
    ]  # fmt: skip


def _handshake_rows(hs: Json, what: str = "clients connected", prefix: str = "") -> list[Row]:
    per = hs.get("per_client_ms", {})
    return [
        (what, f"{fmt(hs.get('ok'))} ok, {fmt(hs.get('failed'))} failed"),
        (f"{prefix}handshake wall time", fmt(hs.get("seconds"), " s")),
        (
            f"{prefix}handshake per client p50/p99",
            f"{fmt(per.get('p50_ms'))}/{fmt(per.get('p99_ms'))} ms",
        ),
    ]


def _step_rows(step: Json, prefix: str = "") -> list[Row]:
    rows: list[Row] = [
        (f"{prefix}messages sent", fmt(step["messages_sent"])),
        (f"{prefix}achieved send rate", fmt(step["achieved_send_rate"], "/s")),
        (
            f"{prefix}deliveries received/expected",
            f"{fmt(step['deliveries_received'])}/{fmt(step['deliveries_expected'])}",
        ),
        (f"{prefix}all delivered", fmt(step["all_delivered"])),
        (f"{prefix}deliveries per second", fmt(step["deliveries_per_second"])),
        (f"{prefix}deliveries per server CPU-second", fmt(step.get("deliveries_per_cpu_second"))),
    ]
    rows += _latency_rows(prefix, step["latency_ms"])
    rows += [
        (f"{prefix}errors / disconnected", f"{step['errors']} / {step['disconnected']}"),
        (f"{prefix}server RSS peak", fmt(step["server"].get("rss_mb_peak"), " MB")),
        (f"{prefix}server CPU", fmt(step["server"].get("cpu_percent"), " %")),
        (
            f"{prefix}server CPU-seconds total/kernel",
            f"{fmt(step['server'].get('cpu_seconds'))}/"
            f"{fmt(step['server'].get('system_cpu_seconds'))}",
        ),
    ]
    rows += _loadgen_rows(step["loadgen"], prefix)
    return rows


def _loadgen_rows(loadgen: Json, prefix: str = "") -> list[Row]:
    rows = [
        (f"{prefix}load generator CPU", ", ".join(fmt(c, " %") for c in loadgen["cpu_percent"]))
    ]
    lag = loadgen.get("tick_lag_ms")
    if lag:
        rows.append((f"{prefix}load generator tick lag p99/max",
                     f"{fmt(lag.get('p99_ms'))}/{fmt(lag.get('max_ms'))} ms"))  # fmt: skip
    return rows


def rate_label(rate: float) -> str:
    return f"{rate:g}/s" if rate > 0 else "unpaced"


def rows_for(result: Json) -> list[Row]:
    scenario = result["scenario"]
    data = result["result"]
    rows: list[Row] = []
    if "not_applicable" in data:
        rows.append(("not applicable", data["not_applicable"]))
    elif scenario == "fanout":
        rows += _handshake_rows(data["handshake"])
        for step in data["steps"]:
            rows += _step_rows(step, f"@{rate_label(step['offered_rate'])} ")
    elif scenario == "idle":
        rows += _handshake_rows(data["handshake"])
        users = data["users_request"]
        rows += [
            ("clients open after hold", fmt(data["clients_open"])),
            ("users reply", fmt(users.get("ms"), " ms") if users.get("ok") else "NO REPLY"),
            ("users listed", fmt(users.get("lengths", {}).get("users"))),
            ("ping after hold ok/failed", f"{data['ping_after_hold']['ok']}/"
             f"{data['ping_after_hold']['failed']}"),
        ]  # fmt: skip
        rows += _server_rows(data["server"])
        rows += _loadgen_rows(data["loadgen"])
    elif scenario == "stall":
        rows += _handshake_rows(data["handshake"])
        rows += _step_rows(data["step"], "others: ")
        rows += [
            ("stalled client dropped (offline seen)", fmt(data["staller_disconnected"])),
            ("... after", fmt(data["staller_disconnected_after_s"], " s")),
            ("stalled client's TCP closed after", fmt(data["staller_tcp_closed_after_s"], " s")),
            ("last delivery to anyone, after stall", fmt(data["last_delivery_after_s"], " s")),
        ]
    elif scenario == "storm":
        rows += _handshake_rows(data["prepare"], "accounts registered", "registration ")
        rows += _handshake_rows(data["handshake"], "chat clients connected", "chat ")
        rows += _handshake_rows(data["storm_logins"], "storm logins", "storm ")
        rows += [
            ("chat messages sent", fmt(data["messages_sent"])),
            ("chat deliveries received/expected",
             f"{fmt(data['deliveries_received'])}/{fmt(data['deliveries_expected'])}"),
        ]  # fmt: skip
        for label, lat in data["latency_ms"].items():
            rows += _latency_rows(f"chat {label}: ", lat)
        rows += _server_rows(data["server"])
        rows += _loadgen_rows(data["loadgen"])
    elif scenario == "soak":
        mem = data["memory"]
        rows += [
            ("sessions (connect, chat, leave)", fmt(data["sessions"])),
            ("messages sent", fmt(data["messages_sent"])),
            ("deliveries received", fmt(data["deliveries_received"])),
            ("connect failures / errors", f"{data['connect_failures']} / {data['errors']}"),
            ("RSS first/max/last", f"{fmt(mem['rss_mb_first'])}/{fmt(mem['rss_mb_max'])}/"
             f"{fmt(mem['rss_mb_last'])} MB"),
            ("RSS trend, second half", fmt(mem["slope_mb_per_min_second_half"], " MB/min")),
        ]  # fmt: skip
        rows += _latency_rows("", data["latency_ms"])
        rows += _server_rows(data["server"])
    return rows


def table(results: Sequence[Json]) -> str:
    """One column per run, one row per metric (rows in first-seen order)."""
    columns = [f"{r['server']}#{r['round']}" if r.get("rounds", 1) > 1 else r["server"]
               for r in results]  # fmt: skip
    grid: dict[str, list[str]] = {}
    for col, result in enumerate(results):
        for label, value in rows_for(result):
            grid.setdefault(label, ["-"] * len(results))[col] = value
        for check in result.get("checks", []):
            label = f"target: {check['name']}"
            verdict = "met" if check["ok"] else "NOT MET"
            grid.setdefault(label, ["-"] * len(results))[col] = f"{verdict} ({check['value']})"
    width = max((len(k) for k in grid), default=10)
    widths = [
        max(len(columns[c]), *(len(v[c]) for v in grid.values())) if grid else len(columns[c])
        for c in range(len(columns))
    ]
    lines = ["  ".join([" " * width, *(h.rjust(w) for h, w in zip(columns, widths, strict=True))])]
    for label, values in grid.items():
        cells = (v.rjust(w) for v, w in zip(values, widths, strict=True))
        lines.append("  ".join([label.ljust(width), *cells]))
    return "\n".join(lines)


def best_step(steps: Sequence[Json]) -> Json | None:
    delivered = [s for s in steps if s["all_delivered"]]
    return max(delivered, key=lambda s: s["offered_rate"]) if delivered else None


def saturation(steps: Sequence[Json]) -> float | None:
    rates = [s["deliveries_per_second"] for s in steps if s["deliveries_per_second"]]
    return max(rates) if rates else None


def efficiency(steps: Sequence[Json]) -> float | None:
    """The best deliveries per server CPU-second over the steps."""
    values = [s["deliveries_per_cpu_second"] for s in steps if s.get("deliveries_per_cpu_second")]
    return max(values) if values else None


def comparisons(results: Sequence[Json]) -> list[Json]:
    """ClassCord against the baseline of the same round."""
    out: list[Json] = []
    rounds = sorted({r.get("round", 1) for r in results})
    for rnd in rounds:
        same_round = [r for r in results if r.get("round", 1) == rnd]
        ours = next((r for r in same_round if r["server"] == "classcord"), None)
        base = next((r for r in same_round if r["server"] == "baseline"), None)
        if ours is None or base is None or ours["scenario"] != "fanout":
            continue
        step = best_step(ours["result"]["steps"])
        ours_rate = step["deliveries_per_second"] if step else None
        base_sat = saturation(base["result"]["steps"])
        ours_eff = efficiency(ours["result"]["steps"])
        base_eff = efficiency(base["result"]["steps"])
        out.append(
            {
                "round": rnd,
                "classcord_deliveries_per_second": ours_rate,
                "classcord_at_offered_rate": step["offered_rate"] if step else None,
                "baseline_saturation_deliveries_per_second": base_sat,
                "ratio": round(ours_rate / base_sat, 1) if ours_rate and base_sat else None,
                "classcord_deliveries_per_cpu_second": ours_eff,
                "baseline_deliveries_per_cpu_second": base_eff,
                "cpu_efficiency_ratio": round(ours_eff / base_eff, 1)
                if ours_eff and base_eff
                else None,
            }
        )
    return out


def checks(result: Json, baseline_saturation: float | None = None) -> list[Json]:
    """The issue's targets, evaluated on one run (only where the run measures them)."""
    scenario, data, out = result["scenario"], result["result"], []

    def check(name: str, value: Any, ok: bool) -> None:
        out.append({"name": name, "value": value, "ok": bool(ok)})

    if scenario == "fanout":
        # The target rate if this run had it, else its highest step.
        at_target = [st for st in data["steps"] if st["offered_rate"] == FANOUT_TARGET_RATE]
        step = at_target[0] if at_target else (data["steps"][-1] if data["steps"] else None)
        if step is not None:
            p99 = step["latency_ms"]["p99_ms"]
            check(f"all delivered @{rate_label(step['offered_rate'])}", step["all_delivered"],
                  step["all_delivered"])  # fmt: skip
            check("p99 <= 50 ms", p99, p99 is not None and p99 <= FANOUT_P99_MS)
            rate = step["deliveries_per_second"]
            if baseline_saturation and rate:
                ratio = round(rate / baseline_saturation, 1)
                check(">= 10x baseline saturation", ratio, ratio >= FANOUT_RATIO)
    elif scenario == "idle":
        rss = data["server"]["rss_mb_peak"]
        check("server RSS <= 100 MB", rss, rss is not None and rss <= IDLE_RSS_MB)
        check("users answered", data["users_request"].get("ms"), data["users_request"].get("ok"))
    elif scenario == "stall":
        p99 = data["step"]["latency_ms"]["p99_ms"]
        check("others p99 <= 50 ms", p99, p99 is not None and p99 <= STALL_P99_MS)
        check("others all delivered", data["step"]["all_delivered"], data["step"]["all_delivered"])
        check("stalled client disconnected", data["staller_disconnected_after_s"],
              data["staller_disconnected"])  # fmt: skip
    elif scenario == "storm":
        lat = data["latency_ms"].get("storm", {})
        p99 = lat.get("p99_ms")
        check("chat p99 during storm <= 100 ms", p99, p99 is not None and p99 <= STORM_P99_MS)
        ok = data["storm_logins"]["failed"] == 0
        check("every storm login ok", data["storm_logins"]["ok"], ok)
    return out


def to_json(document: Json) -> str:
    return json.dumps(document, indent=2, sort_keys=False)
