"""Every setting and limit of the server, in one frozen object.

Each field carries its help text; the CLI builds one ``--flag`` per field and reads
the matching ``CLASSCORD_<NAME>`` variable, so a limit cannot exist without being
documented and settable. Precedence: command-line flag, then variable, then default.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from classcord.errors import SettingsError

ENV_PREFIX = "CLASSCORD_"

T = TypeVar("T", str, int, float, bool)


def _setting(default: T, help_text: str, minimum: float | None = None) -> T:
    """A field with its help text; mypy checks the default against the annotation."""
    return field(default=default, metadata={"help": help_text, "minimum": minimum})


@dataclass(frozen=True)
class Settings:
    # Network
    host: str = _setting("0.0.0.0", "address to listen on (0.0.0.0: every interface)")  # noqa: S104
    port: int = _setting(12345, "TCP port to listen on (0: pick a free one)", 0)
    # Storage
    data_dir: str = _setting("data", "folder for the SQLite database, backups and admin socket")
    history_retention_days: int = _setting(
        365, "delete messages older than this many days (0: keep forever)", 0
    )
    history_max_messages: int = _setting(
        1_000_000, "keep at most this many messages, oldest deleted first (0: no cap)", 0
    )
    history_flush_ms: int = _setting(
        200, "messages are committed in batches at least this often (crash loses at most this)", 1
    )
    channel_allowlist: str = _setting(
        "", "comma-separated channels users may join (empty: any valid name creates one)"
    )
    max_channel_chars: int = _setting(32, "longest channel name in characters, without #", 1)
    max_channels: int = _setting(200, "channels on the server at once, #general included", 1)
    max_channels_per_member: int = _setting(20, "channels one connection may be in at once", 1)
    channels_list_max: int = _setting(
        100, "channels a channel list shows at most (the most populated first)", 1
    )
    history_default_limit: int = _setting(
        50, "messages a history request returns when it names no limit", 1
    )
    history_max_limit: int = _setting(200, "most messages one history request returns", 1)
    prune_interval_seconds: float = _setting(
        3600.0, "seconds between two retention passes over the history", 1
    )
    # Logging
    log_level: str = _setting("info", "debug, info, warning or error (debug logs every message)")
    log_file: str = _setting("", "also append the log to this file (empty: stdout only)")
    # Framing and content
    max_line_bytes: int = _setting(
        16_384, "longest request line in bytes; longer lines get an error", 256
    )
    abuse_line_bytes: int = _setting(
        67_108_864,
        "a single line this long is endless input and closes the connection"
        " (a long paste only gets the line-too-long error)",
        256,
    )
    max_content_chars: int = _setting(2_000, "longest message content in characters", 1)
    max_name_chars: int = _setting(64, "longest user or guest name in characters", 1)
    max_password_chars: int = _setting(1_024, "longest password in characters", 1)
    # Rate limiting (token bucket per connection)
    rate_per_second: float = _setting(20.0, "requests per second a connection may sustain", 0.001)
    rate_burst: int = _setting(60, "requests a connection may send at once before limiting", 1)
    flood_disconnect_after: int = _setting(
        200,
        "requests rejected over the rate, with no pause of flood-window-seconds between"
        " two of them, before the connection is closed (sustained flooding)",
        1,
    )
    flood_window_seconds: float = _setting(
        10.0, "a pause this long without a rejected request ends a flooding episode", 0.1
    )
    cut_off_grace_seconds: float = _setting(
        2.0, "seconds a client cut off for abuse has to read why before the reset", 0
    )
    pending_input_bytes: int = _setting(
        65_536, "unread bytes one connection may have waiting behind a slow request", 1024
    )
    lines_per_turn: int = _setting(
        64, "lines of one connection handled before the others get a turn", 1
    )
    # Output
    send_queue_bytes: int = _setting(
        1_048_576, "unsent bytes to one client before it is disconnected as a stalled reader", 1024
    )
    write_chunk_bytes: int = _setting(
        65_536,
        "most bytes handed to a client's socket at once: when the kernel's buffer is full,"
        " the rest waits as references to lines shared with the other clients",
        512,
    )
    write_coalesce_ms: float = _setting(
        0.0,
        "wait up to this long to write several lines to a client in one system call"
        " (0: write at the end of each event-loop pass)",
        0,
    )
    # Connections
    max_connections: int = _setting(2_000, "connections in total", 1)
    max_connections_per_address: int = _setting(
        1_000, "connections from one address (high: behind NAT a whole class shares one)", 1
    )
    silent_connection_timeout: float = _setting(
        900.0, "seconds a connection that never sends a byte is kept (login screens wait)", 1
    )
    tcp_keepalive: bool = _setting(True, "enable TCP keepalive probes on client sockets")
    keepalive_idle_seconds: int = _setting(
        60, "idle seconds before the first keepalive probe (a PC switched off mid-lesson)", 1
    )
    keepalive_interval_seconds: int = _setting(15, "seconds between keepalive probes", 1)
    keepalive_probes: int = _setting(4, "unanswered probes before a dead peer is dropped", 1)
    # Accounts
    login_max_failures: int = _setting(
        5, "failed logins on one account before it is locked for a while", 1
    )
    login_failure_window: float = _setting(300.0, "seconds over which failed logins are counted", 1)
    login_lockout_seconds: float = _setting(
        60.0, "seconds an account answers 'Login failed.' after too many failures", 0
    )
    scrypt_n: int = _setting(16_384, "scrypt CPU/memory cost for new password hashes", 2)
    scrypt_r: int = _setting(8, "scrypt block size", 1)
    scrypt_p: int = _setting(1, "scrypt parallelism", 1)
    scrypt_maxmem_bytes: int = _setting(
        128 * 1024 * 1024, "memory one scrypt hash may use (must fit n and r)", 1024 * 1024
    )
    hash_workers: int = _setting(1, "threads that hash passwords, off the event loop", 1)
    hash_thread_niceness: int = _setting(
        10, "niceness added to hash threads, so logins yield the CPU to the chat", 0
    )
    # Admin socket
    admin_max_request_bytes: int = _setting(
        65_536, "longest request line on the admin socket in bytes", 256
    )
    # TLS (off unless both files are given)
    tls_cert_file: str = _setting(
        "", "PEM certificate (chain) for the TLS port; with tls-key-file, turns TLS on"
    )
    tls_key_file: str = _setting("", "PEM private key of that certificate")
    tls_port: int = _setting(12346, "TCP port of the TLS listener (0: pick a free one)", 0)
    tls_handshake_timeout: float = _setting(
        10.0, "seconds a TLS handshake may take before the connection is dropped", 0.1
    )
    tls_only: bool = _setting(False, "with TLS on, do not open the plaintext port at all")
    # Lifecycle
    shutdown_timeout: float = _setting(
        5.0, "seconds to flush and close clients on shutdown before cutting them", 0
    )
    # Storage safety and login fairness
    history_retry_initial_seconds: float = _setting(
        1.0, "first wait before retrying history writes after a disk or database failure", 0.01
    )
    history_retry_max_seconds: float = _setting(
        30.0, "longest wait between two retries of history writes (the back-off doubles)", 0.01
    )
    history_max_pending: int = _setting(
        200_000, "messages kept in memory while the database fails (oldest dropped past it)", 10
    )
    storage_timeout_seconds: float = _setting(
        5.0, "a history read or health probe waiting longer on the database gives up", 0.1
    )
    shutdown_storage_seconds: float = _setting(
        3.0,
        "extra seconds shutdown gives the last history flush and the database close;"
        " past it the unwritten messages are logged and the process exits",
        0.1,
    )
    health_min_free_bytes: int = _setting(
        100_000_000, "healthcheck fails when the data folder has less free space", 0
    )
    health_max_pending_seconds: float = _setting(
        60.0, "healthcheck fails when a message has waited this long to be stored", 1
    )
    hash_pipeline_depth: int = _setting(
        8,
        "hashes handed to the hash threads ahead of time, so that logins that finish"
        " together share one write to each client (a login may wait behind this many)",
        1,
    )
    hash_pipeline_seconds: float = _setting(
        0.25,
        "with fast hashes, hand over more than hash-pipeline-depth: as many as take"
        " about this long to compute (so cheap hashing is not throttled)",
        0,
    )
    login_hashes_in_flight: int = _setting(
        32,
        "password hashes queued or running at once, all connections together (a class"
        " logging in at once fits; past it a login is refused at once, without hashing)",
        1,
    )
    login_hashes_per_connection: int = _setting(
        1, "password hashes one connection may have queued or running", 1
    )
    login_account_slowdown_seconds: float = _setting(
        1.0,
        "after login_max_failures failures on an account, at most one guess per this"
        " many seconds on it from connections that already failed on it",
        0,
    )
    login_tracked_max: int = _setting(
        100_000, "names with recent failed logins kept in memory (oldest forgotten past it)", 10
    )
    # Moderation (roles, mutes, slow mode...: see PROTOCOL.md, "Classroom controls")
    moderation_max_duration_seconds: int = _setting(
        30 * 86_400, "longest mute, silence or timed ban a command may set", 1
    )
    moderation_max_slow_seconds: int = _setting(3_600, "slowest slow mode (/slow SECONDS)", 1)
    moderation_max_delete: int = _setting(50, "most messages one /delete removes", 1)
    moderation_max_modlog: int = _setting(100, "most entries one /modlog shows", 1)
    moderation_max_reason_chars: int = _setting(200, "longest reason of a mute, kick or ban", 1)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            minimum = f.metadata.get("minimum")
            value = getattr(self, f.name)
            if minimum is not None and value < minimum:
                raise SettingsError(f"{f.name} must be at least {minimum}, got {value}")
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port must be between 0 and 65535, got {self.port}")
        if self.log_level.lower() not in {"debug", "info", "warning", "error"}:
            raise SettingsError(
                f"log_level must be debug, info, warning or error: {self.log_level!r}"
            )
        if self.scrypt_n & (self.scrypt_n - 1):
            raise SettingsError(f"scrypt_n must be a power of two, got {self.scrypt_n}")
        from classcord.protocol import normalize_channel

        for name in self.channel_allowlist.split(","):
            if name.strip() and normalize_channel(name, self.max_channel_chars) is None:
                raise SettingsError(f"channel_allowlist: invalid channel name {name.strip()!r}")
        if self.abuse_line_bytes < self.max_line_bytes:
            raise SettingsError("abuse_line_bytes must be at least max_line_bytes")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise SettingsError("tls_cert_file and tls_key_file go together: give both or neither")
        if self.tls_only and not self.tls_cert_file:
            raise SettingsError("tls_only needs tls_cert_file and tls_key_file")
        if not 0 <= self.tls_port <= 65535:
            raise SettingsError(f"tls_port must be between 0 and 65535, got {self.tls_port}")
        if self.history_default_limit > self.history_max_limit:
            raise SettingsError("history_default_limit must be at most history_max_limit")
        if 128 * self.scrypt_n * self.scrypt_r > self.scrypt_maxmem_bytes:
            raise SettingsError(
                "scrypt_maxmem_bytes is too small for scrypt_n and scrypt_r"
                f" (needs more than {128 * self.scrypt_n * self.scrypt_r} bytes)"
            )

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def database_path(self) -> Path:
        return self.data_path / "classcord.db"

    @property
    def allowed_channels(self) -> frozenset[str]:
        from classcord.protocol import normalize_channel

        names = (
            normalize_channel(n, self.max_channel_chars)
            for n in self.channel_allowlist.split(",")
            if n.strip()
        )
        return frozenset(n for n in names if n is not None)

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert_file and self.tls_key_file)

    @property
    def admin_socket_path(self) -> Path:
        return self.data_path / "admin.sock"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def parse_value(kind: type, raw: str, name: str) -> Any:
    """Convert a flag or variable's text to the field's type, or raise SettingsError."""
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name}: expected true or false, got {raw!r}")
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected {kind.__name__}, got {raw!r}") from None


def field_types() -> dict[str, type]:
    kinds = {"str": str, "int": int, "float": float, "bool": bool}
    return {f.name: kinds[str(f.type)] for f in dataclasses.fields(Settings)}


def settings_from(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build Settings from typed overrides (flags) over ``CLASSCORD_*`` variables."""
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    values: dict[str, Any] = {}
    for name, kind in field_types().items():
        if overrides.get(name) is not None:
            values[name] = overrides[name]
        elif env_name(name) in environ:
            values[name] = parse_value(kind, environ[env_name(name)], env_name(name))
    return Settings(**values)


def settings_table() -> str:
    """README's settings table, generated so that it cannot drift from the code
    (``python3 -m classcord.config`` prints it; a test compares)."""
    defaults = Settings()
    rows = ["| flag | variable | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(Settings):
        default = getattr(defaults, f.name)
        flag, variable, meaning = flag_name(f.name), env_name(f.name), f.metadata["help"]
        rows.append(f"| `{flag}` | `{variable}` | `{default!r}` | {meaning} |")
    return "\n".join(rows)


def port_from_environment(environ: Mapping[str, str] | None = None) -> int:
    """``CLASSCORD_PORT`` when it is a valid port, else the default: for the helper
    commands (healthcheck, client, doctor), which must not fail on a server setting."""
    raw = (os.environ if environ is None else environ).get(env_name("port"), "").strip()
    if raw.isdigit() and 0 < int(raw) <= 65535:
        return int(raw)
    return Settings().port


if __name__ == "__main__":
    print(settings_table())
