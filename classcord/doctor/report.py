"""The doctor's output: a text report for people, or JSON for scripts and the lab."""

from __future__ import annotations

import json
from collections.abc import Sequence

from classcord.doctor.check import Check, Status
from classcord.doctor.facts import Facts

LABELS = {
    Status.OK: "[ OK ]",
    Status.INFO: "[INFO]",
    Status.WARN: "[WARN]",
    Status.FAIL: "[FAIL]",
    Status.SKIP: "[SKIP]",
}


def render_text(facts: Facts, checks: Sequence[Check], final: str) -> str:
    lines = [f"ClassCord doctor: port {facts.port}, seen from this machine", ""]
    for check in checks:
        lines.append(f"{LABELS[check.status]} {check.label}: {check.summary}")
        lines.extend(f"         {detail}" for detail in check.details)
        if check.fix and check.status in (Status.FAIL, Status.WARN):
            lines.append(f"         fix: {check.fix}")
    lines += ["", final]
    return "\n".join(lines)


def render_json(facts: Facts, checks: Sequence[Check], final: str) -> str:
    return json.dumps(
        {
            "port": facts.port,
            "checks": [c.as_dict() for c in checks],
            "verdict": final,
            "ok": not any(c.status is Status.FAIL for c in checks),
        },
        indent=2,
    )
