"""The client's exit codes, shared by the chat and raw sessions and the CLI."""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_CONNECTION: Final = 1  # could not connect, or the server closed the connection
EXIT_INTERRUPTED: Final = 130  # Ctrl+C, like a shell
