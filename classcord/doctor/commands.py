"""Running the read-only system commands the doctor reads (``ip``, ``iptables``)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

COMMAND_TIMEOUT = 10.0


def run_command(command: Sequence[str]) -> tuple[int, str]:
    """Run a read-only command; (exit code, stdout). 127 when it is not installed."""
    if shutil.which(command[0]) is None:
        return 127, ""
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument lists, no shell
            list(command),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 126, str(exc)
    return done.returncode, done.stdout
