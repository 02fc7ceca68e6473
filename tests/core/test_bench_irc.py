"""The load generator's IRC dialect and the IRC daemons' generated configurations:
parsing, counting and config text, with no socket and no daemon."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from classcord.bench import ircd
from classcord.bench.client import JSON_DIALECT, BenchClient, HandshakeError, LatencyBook
from classcord.bench.irc import (
    IRC_DIALECT,
    SERVER_NAME,
    Message,
    irc_handshake,
    irc_roster,
    is_error,
    lusers_count,
    parse_line,
)
from classcord.bench.spawn import dialect_of, is_valid_kind, not_applicable


def test_a_line_parses_into_prefix_command_and_params() -> None:
    line = b":bench3!~bench3@127.0.0.1 PRIVMSG #room :~b~3 7 12345~\r\n"
    assert parse_line(line) == Message(
        "bench3!~bench3@127.0.0.1", "PRIVMSG", ("#room", "~b~3 7 12345~")
    )
    assert parse_line(b"PING :bench.irc\r\n") == Message("", "PING", ("bench.irc",))
    assert parse_line(b":bench.irc 001 bench0 :Welcome\n").command == "001"
    assert parse_line(b"ping x") == Message("", "PING", ("x",))  # commands are case-blind


def test_odd_lines_parse_without_raising() -> None:
    assert parse_line(b"") == Message("", "", ())
    assert parse_line(b":only.a.prefix") == Message("only.a.prefix", "", ())
    assert parse_line(b"CMD a b :") == Message("", "CMD", ("a", "b", ""))
    assert parse_line(b"CMD :x :y") == Message("", "CMD", ("x :y",))
    assert parse_line("NOTICE * :caf\xe9".encode("latin-1")).params[-1] == "caf\ufffd"


@given(st.binary(max_size=200))
def test_any_bytes_parse(data: bytes) -> None:
    message = parse_line(data)
    assert message.command == message.command.upper()


def test_error_numerics_and_error_lines_are_errors() -> None:
    assert is_error(parse_line(b":bench.irc 433 * bench1 :Nickname already in use"))
    assert is_error(parse_line(b":bench.irc 502 x :Cant change mode for other users"))
    assert is_error(parse_line(b"ERROR :Closing link: (bench1@127.0.0.1) [Excess Flood]"))
    assert not is_error(parse_line(b":bench.irc 353 bench1 = #room :bench1 bench2"))
    assert not is_error(parse_line(b":bench1!u@h PRIVMSG #room :~b~1 404 5~"))


def test_the_irc_message_carries_the_json_payload() -> None:
    irc = IRC_DIALECT.message_line(4, 404, 123)
    assert irc == b"PRIVMSG #room :~b~4 404 123~\r\n"
    assert b"~b~4 404 123~" in JSON_DIALECT.message_line(4, 404, 123)


def _counted(data: bytes, cuts: list[int]) -> tuple[BenchClient, list[bytes]]:
    written: list[bytes] = []
    client = BenchClient(0, "bench0", "chat", True, LatencyBook(), IRC_DIALECT)
    client.write = written.append  # type: ignore[method-assign]
    client.count_mode()
    position = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        client.data_received(data[position:cut])
        position = cut
    client.data_received(data[position:])
    return client, written


@given(st.lists(st.integers(0, 100_000), max_size=30), st.integers(1, 20))
def test_irc_markers_are_counted_once_however_the_bytes_are_cut(cuts: list[int], n: int) -> None:
    lines = []
    for i in range(n):
        # a seq of 404 or 433 must not pass for an error numeric
        lines.append(b":bench1!~bench1@127.0.0.1 " + IRC_DIALECT.message_line(1, 400 + i, 10))
        lines.append(b":bench.irc PONG bench.irc :bench\r\n")
        lines.append(b":bench2!~bench2@127.0.0.1 JOIN :#room\r\n")
    data = b"".join(lines) + b":bench.irc 404 bench0 #room :Cannot send to channel\r\n"
    data += b"PING :bench.irc\r\nERROR :Closing link\r\n"
    client, written = _counted(data, cuts)
    assert client.delivered == n
    assert client.pongs == n
    assert client.errors == 2
    assert b"".join(written) == IRC_DIALECT.pong_line  # the server's ping answered once
    assert client.book.current.total <= n  # probes: a timestamp cut in two is skipped


class _Script:
    """Stands in for the transport: what the client writes, and the server's lines."""

    def __init__(self, client: BenchClient, replies: dict[bytes, bytes]) -> None:
        self.client = client
        self.replies = replies
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)
        for prefix, reply in self.replies.items():
            if data.startswith(prefix):
                asyncio.get_running_loop().call_soon(self.client.data_received, reply)


def _scripted(replies: dict[bytes, bytes]) -> tuple[BenchClient, _Script]:
    client = BenchClient(0, "bench0", "chat", False, LatencyBook(), IRC_DIALECT)
    script = _Script(client, replies)
    client.write = script.write  # type: ignore[method-assign]
    return client, script


async def test_the_handshake_registers_answers_a_ping_and_joins() -> None:
    client, script = _scripted(
        {
            b"NICK": b"PING :cookie\r\n:bench.irc NOTICE * :hi\r\n:bench.irc 001 bench0 :Hi\r\n",
            b"JOIN": b":bench0!u@h JOIN :#room\r\n:bench.irc 353 bench0 = #room :bench0\r\n"
            b":bench.irc 366 bench0 #room :End\r\n",
        }
    )
    await irc_handshake(client, "login", "unused", 1.0)
    assert client.logged_in
    assert script.written[0] == b"NICK bench0\r\nUSER bench0 0 * :bench0\r\n"
    assert b"PONG :cookie\r\n" in script.written
    assert script.written[-1] == b"JOIN #room\r\n"


async def test_a_refused_nick_fails_the_handshake() -> None:
    client, _ = _scripted({b"NICK": b":bench.irc 433 * bench0 :Nickname is already in use\r\n"})
    try:
        await irc_handshake(client, "guest", "", 1.0)
    except HandshakeError as exc:
        assert "433" in str(exc)
    else:
        raise AssertionError("the handshake went on after a 433")


async def test_the_roster_counts_names_across_lines() -> None:
    client, _ = _scripted(
        {
            b"NAMES": b":bench.irc 353 bench0 = #room :bench0 bench1 bench2\r\n"
            b":bench9!u@h PRIVMSG #room :~b~9 1 2~\r\n"
            b":bench.irc 353 bench0 = #room :bench3\r\n:bench.irc 366 bench0 #room :End\r\n"
        }
    )
    assert await irc_roster(client, 1.0) == 4


async def test_a_client_told_to_stay_out_of_the_room_registers_only() -> None:
    client, script = _scripted(
        {
            b"NICK": b":bench.irc 001 bench0 :Hi\r\n",
            b"LUSERS": b":bench.irc 251 bench0 :There are 7 users and 2 invisible on 1 servers\r\n",
        }
    )
    client.joins_room = False
    await irc_handshake(client, "login", "unused", 1.0)
    assert all(not line.startswith(b"JOIN") for line in script.written)
    assert await irc_roster(client, 1.0) == 9


def test_lusers_counts_users_whichever_daemon_says_it() -> None:
    inspircd = parse_line(b":s 251 n :There are 10000 users and 3 invisible on 1 servers")
    ngircd = parse_line(b":s 251 n :There are 10000 users and 0 services on 1 servers")
    assert (lusers_count(inspircd), lusers_count(ngircd)) == (10_003, 10_000)


def test_a_departure_is_the_clients_own_prefix() -> None:
    assert IRC_DIALECT.departure("bench100", False) == b":bench100!"
    assert JSON_DIALECT.departure("bench100", False) == b'"user": "bench100", "state": "offline"'
    assert JSON_DIALECT.departure("bench100g", True) == b'"state": "offline"'


def test_the_inspircd_config_lifts_every_limit_on_loopback(tmp_path: Path) -> None:
    text = ircd.inspircd_config(tmp_path, "127.0.0.1", 40123)
    assert '<bind address="127.0.0.1" port="40123" type="clients">' in text
    assert f'<server name="{SERVER_NAME}"' in text
    for setting in ('resolvehostnames="no"', 'useident="no"', 'fakelag="no"'):
        assert setting in text
    for key in ("localmax", "globalmax", "limit", "softlimit"):
        assert f'{key}="{ircd.MAX_CLIENTS}"' in text
    assert ircd.MAX_CLIENTS > 10_000
    # the penalty drains faster than any sender adds to it, and the threshold fits
    # InspIRCd's 32-bit arithmetic (threshold times 1000)
    assert int(_attribute(text, "commandrate")) >= 1000 * 100_000
    assert int(_attribute(text, "threshold")) * 1000 < 2**32
    assert str(tmp_path / "inspircd.pid") in text
    assert "<module" not in text  # no ident, DNSBL, cloaking or TLS module
    assert "ssl" not in text.lower()


def test_the_ngircd_config_turns_penalties_and_lookups_off(tmp_path: Path) -> None:
    text = ircd.ngircd_config(tmp_path, "127.0.0.1", 40124)
    settings = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition("=") for line in text.splitlines())
        if value
    )
    assert settings["Listen"] == "127.0.0.1"
    assert settings["Ports"] == "40124"
    assert settings["Name"] == SERVER_NAME
    assert settings["MaxPenaltyTime"] == "0"
    assert settings["MaxConnections"] == settings["MaxConnectionsIP"] == "0"  # no limit
    assert (settings["DNS"], settings["Ident"], settings["PAM"]) == ("no", "no", "no")
    assert settings["PidFile"].startswith(str(tmp_path))
    assert "MotdPhrase" in settings  # no MOTD file needed
    assert "[SSL]" not in text


def test_daemon_command_lines() -> None:
    conf = Path("/tmp/x.conf")
    assert ircd.daemon_command("inspircd", "/usr/sbin/inspircd", conf, False) == [
        "/usr/sbin/inspircd", "--nofork", "--config", "/tmp/x.conf",
    ]  # fmt: skip
    assert ircd.daemon_command("inspircd", "i", conf, True)[-1] == "--runasroot"
    assert ircd.daemon_command("ngircd", "n", conf, True) == [
        "n", "--nodaemon", "--config", "/tmp/x.conf",
    ]  # fmt: skip


def test_a_listening_socket_is_found_in_the_kernels_table() -> None:
    table = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
        "   uid  timeout inode\n"
        "   0: 0100007F:9C4B 00000000:0000 0A 00000000:00000000 00:00000000 00000000"
        "     0        0 41211 1 0000000000000000 100 0 0 10 0\n"
        "   1: 0100007F:9C4B 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000"
        "     0        0 41300 1 0000000000000000 20 4 30 10 -1\n"
    )
    assert ircd.listening_inodes(table, "127.0.0.1", 0x9C4B) == {41211}
    assert ircd.listening_inodes(table, "127.0.0.1", 0x9C4C) == set()


def test_kinds_dialects_and_scenarios() -> None:
    assert is_valid_kind("inspircd")
    assert is_valid_kind("ngircd")
    assert not is_valid_kind("inspircd@/tmp")
    assert (dialect_of("ngircd"), dialect_of("classcord"), dialect_of("baseline")) == (
        "irc", "json", "json",
    )  # fmt: skip
    assert not_applicable("inspircd", "storm")
    assert not_applicable("inspircd", "fanout") is None
    assert not_applicable("classcord", "storm") is None


def _attribute(text: str, name: str) -> str:
    return text.split(f'{name}="', 1)[1].split('"', 1)[0]
