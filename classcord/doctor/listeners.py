"""Listening sockets on the port, from /proc/net/tcp and tcp6, with the process
that owns each one (when we may look into it)."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
from pathlib import Path

from classcord.doctor.facts import AnyAddress, Listener


def _decode_proc_address(text: str) -> tuple[AnyAddress, int]:
    """``0100007F:3039`` -> (127.0.0.1, 12345); IPv6 is four little-endian words."""
    hex_address, hex_port = text.split(":")
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address: AnyAddress
    if len(words) == 4:
        address = ipaddress.IPv4Address(words)
    else:
        address = ipaddress.IPv6Address(words)
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
    return address, int(hex_port, 16)


def parse_proc_net_tcp(text: str, port: int) -> list[Listener]:
    """Listening sockets on ``port`` from the text of /proc/net/tcp or tcp6."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != "0A":  # 0A: TCP_LISTEN
            continue
        try:
            address, local_port = _decode_proc_address(fields[1])
            inode = int(fields[9])
        except ValueError:
            continue
        if local_port == port:
            found.append(Listener(address, local_port, inode))
    return found


def _socket_owners(inodes: set[int], proc: Path = Path("/proc")) -> dict[int, tuple[int, str, str]]:
    """inode -> (pid, name, command line), for the processes we may look into."""
    owners: dict[int, tuple[int, str, str]] = {}
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                link = os.readlink(fd)
                if link in wanted:
                    name = (entry / "comm").read_text().strip()
                    cmdline = (
                        (entry / "cmdline")
                        .read_bytes()
                        .replace(b"\0", b" ")
                        .decode("utf-8", "replace")
                    )
                    owners[wanted[link]] = (int(entry.name), name, cmdline.strip())
        except OSError:
            continue
        if len(owners) == len(wanted):
            break
    return owners


def find_listeners(port: int) -> tuple[Listener, ...]:
    listeners: list[Listener] = []
    for name in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            listeners += parse_proc_net_tcp(Path(f"/proc/net/{name}").read_text(), port)
    owners = _socket_owners({item.inode for item in listeners}) if listeners else {}
    result = []
    for item in listeners:
        if item.inode in owners:
            pid, process, cmdline = owners[item.inode]
            result.append(dataclasses.replace(item, pid=pid, process=process, cmdline=cmdline))
        else:
            result.append(item)
    return tuple(result)
