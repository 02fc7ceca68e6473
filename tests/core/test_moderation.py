"""The moderation core (moderation.py): roles, rules on an injected clock, rows, log.

Pure and fast: the clock is a number the test moves, never a sleep."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from classcord import moderation, texts
from classcord.errors import StorageError
from classcord.moderation import (
    ALLOWED,
    Action,
    Expiry,
    LogEntry,
    ModerationState,
    Refusal,
    Role,
    RuleKind,
    RuleRow,
    expiry_announcement,
    expiry_entry,
    format_duration,
    format_log_line,
    format_modlog,
    log_value,
    may_act_on,
    may_grant,
    parse_duration,
    parse_role,
    until_phrase,
)

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC).timestamp()
CYRILLIC_A = "\u0430"
S, M, T = Role.STUDENT, Role.MODERATOR, Role.TEACHER


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> ModerationState:
    return ModerationState(clock, UTC)


# --- roles --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor", "target", "allowed"),
    [
        (S, S, False),
        (S, M, False),
        (S, T, False),
        (M, S, True),
        (M, M, False),
        (M, T, False),
        (T, S, True),
        (T, M, True),
        (T, T, False),
    ],
)
def test_permission_matrix(actor: Role, target: Role, allowed: bool) -> None:
    assert may_act_on(actor, target) is allowed


@pytest.mark.parametrize("actor", list(Role))
@pytest.mark.parametrize("target", list(Role))
@pytest.mark.parametrize("new_role", list(Role))
def test_only_a_teacher_grants_and_never_teacher(actor: Role, target: Role, new_role: Role) -> None:
    expected = actor is T and target is not T and new_role is not T
    assert may_grant(actor, target, new_role) is expected


@pytest.mark.parametrize(
    "stored", ["Teacher", "TEACHER", " teacher", "teacher\n", "professeur", "moderateur", None, 2]
)
def test_a_role_spelled_differently_in_storage_is_a_student(stored: object) -> None:
    assert Role.from_stored(stored) is S


def test_stored_roles_read_back_exactly() -> None:
    assert [Role.from_stored(r.value) for r in Role] == list(Role)


@pytest.mark.parametrize(
    ("word", "role"),
    [
        ("moderator", M),
        ("Modérateur", M),
        ("MODO", M),
        ("student", S),
        ("élève", S),
        ("teacher", T),
        ("Professeur", T),
        (f"te{CYRILLIC_A}cher", T),  # a look-alike is still recognised (and refused)
        ("ｔｅａｃｈｅｒ", T),
        ("admin", None),
        ("", None),
    ],
)
def test_parse_role(word: str, role: Role | None) -> None:
    assert parse_role(word) is role


def test_role_labels_are_french() -> None:
    assert [r.label for r in Role] == ["élève", "modérateur", "professeur"]
    assert [r.is_staff for r in Role] == [False, True, True]


# --- durations and time --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("10m", 600),
        ("10mn", 600),
        ("10min", 600),
        ("1h", 3600),
        ("2d", 172_800),
        ("2j", 172_800),
        ("1h30m", 5400),
        ("1H30M", 5400),
        ("90sec", 90),
        ("30j", 30 * 86_400),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text, 30 * 86_400) == seconds


@pytest.mark.parametrize(
    "text", ["", "10", "m", "10x", "1h 30m", "-5m", "0s", "0m0s", "31j", "1.5h", "１０m", "10m!"]
)
def test_not_a_duration(text: str) -> None:
    assert parse_duration(text, 30 * 86_400) is None


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0 s"), (45, "45 s"), (600, "10 min"), (5400, "1 h 30 min"), (2 * 86_400, "2 j")],
)
def test_format_duration(seconds: int, shown: str) -> None:
    assert format_duration(seconds) == shown


def test_until_phrase_today_tomorrow_and_rounded_up() -> None:
    assert until_phrase(None, T0, UTC) == ""
    assert until_phrase(T0 + 600, T0, UTC) == " jusqu'à 14:10"
    assert until_phrase(T0 + 601, T0, UTC) == " jusqu'à 14:11"  # never earlier than the end
    assert until_phrase(T0 + 86_400, T0, UTC) == " jusqu'au 02/12 à 14:00"


# --- the hot path with nothing moderated ---------------------------------------------------


def test_no_moderation_is_a_no_op(
    state: ModerationState, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No clock read, no name key, the shared ALLOWED: the check is one boolean."""

    def no_key(name: str) -> str:
        raise AssertionError("name_key on the hot path with nothing moderated")

    monkeypatch.setattr(moderation, "name_key", no_key)
    for role in Role:
        assert state.may_post("Léa", role, "#general") is ALLOWED
        assert state.may_post("Léa", role) is ALLOWED
        for other in Role:
            assert state.may_private("Léa", role, "Bob", other) is ALLOWED
    assert clock.calls == 0
    assert state.ban_of("Léa") is None
    assert not state.active
    assert state.to_rows() == []
    assert state.version == 0


def test_back_to_the_no_op_once_every_rule_is_lifted(
    state: ModerationState, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    state.mute("Léa", None)
    state.set_slow(None, 30)
    state.silence("#dev", None)
    state.set_private(False)
    state.set_private(True, "Léa")
    assert state.active
    state.unmute("léa")
    state.clear_slow(None)
    state.unsilence("#dev")
    state.set_private(True)
    assert not state.active
    monkeypatch.setattr(moderation, "name_key", lambda name: pytest.fail("name_key called"))
    calls = clock.calls
    assert state.may_post("Léa", S, "#general") is ALLOWED
    assert state.may_private("Léa", S, "Bob", S) is ALLOWED
    assert clock.calls == calls


def test_an_expired_rule_brings_back_the_no_op(state: ModerationState, clock: Clock) -> None:
    state.mute("Léa", T0 + 60)
    clock.now += 60
    state.expire()
    assert not state.active
    assert state.may_post("Léa", S) is ALLOWED


# --- mutes ---------------------------------------------------------------------------


def test_a_mute_refuses_posts_until_it_ends(state: ModerationState, clock: Clock) -> None:
    state.mute("Léa", T0 + 600, "bavardages", "prof")
    decision = state.may_post("Léa", S, "#general")
    assert not decision.allowed
    assert decision.refusal is Refusal.MUTED
    assert decision.until == T0 + 600
    assert "sourdine jusqu'à 14:10" in decision.notice
    assert state.may_post("Bob", S, "#general") is ALLOWED
    clock.now = T0 + 599.9
    assert not state.may_post("Léa", S).allowed
    clock.now = T0 + 600
    assert state.may_post("Léa", S).allowed
    assert state.expire() == [Expiry(RuleKind.MUTE, "Léa", None, T0 + 600)]
    assert state.expire() == []  # reported once


def test_a_mute_without_end_lasts_until_unmuted(state: ModerationState, clock: Clock) -> None:
    state.mute("Léa", None)
    clock.now += 365 * 86_400
    decision = state.may_post("Léa", S)
    assert not decision.allowed
    assert decision.until is None
    assert "jusqu" not in decision.notice
    assert state.next_expiry() is None
    assert state.unmute("LÉA") is not None
    assert state.may_post("Léa", S).allowed
    assert state.unmute("Léa") is None


@pytest.mark.parametrize("spelling", ["alice", "ALICE", "ａｌｉｃｅ", f"{CYRILLIC_A}lice"])
def test_mutes_and_bans_follow_the_name_key(state: ModerationState, spelling: str) -> None:
    state.mute("Alice", None)
    state.ban("Alice", None)
    assert not state.may_post(spelling, S).allowed
    assert state.mute_of(spelling) is not None
    assert state.ban_of(spelling) is not None


def test_a_mute_also_holds_a_moderator(state: ModerationState) -> None:
    # Only a teacher can have set it (permission matrix); it applies whatever the role.
    state.mute("Modo", None)
    assert state.may_post("Modo", M).refusal is Refusal.MUTED


def test_a_muted_student_may_still_write_to_staff_only(state: ModerationState) -> None:
    state.mute("Léa", T0 + 60)
    assert state.may_private("Léa", S, "Prof", T) is ALLOWED
    assert state.may_private("Léa", S, "Modo", M) is ALLOWED
    refused = state.may_private("Léa", S, "Bob", S)
    assert refused.refusal is Refusal.MUTED
    assert "au professeur" in refused.notice
    assert state.may_private("Bob", S, "Léa", S) is ALLOWED  # she still reads


# --- silence -------------------------------------------------------------------------


def test_server_wide_silence_spares_staff_only(state: ModerationState, clock: Clock) -> None:
    state.silence(None, T0 + 300, "prof")
    for channel in ("#general", "#dev", None):
        decision = state.may_post("Léa", S, channel)
        assert decision.refusal is Refusal.SILENCE
        assert decision.until == T0 + 300
    assert "jusqu'à 14:05" in state.may_post("Léa", S).notice
    assert state.may_post("Modo", M, "#general") is ALLOWED
    assert state.may_post("Prof", T, "#general") is ALLOWED
    assert state.may_private("Léa", S, "Bob", S) is ALLOWED  # silence is about the room
    clock.now = T0 + 300
    assert state.may_post("Léa", S, "#general").allowed
    assert state.expire() == [Expiry(RuleKind.SILENCE, "", None, T0 + 300)]


def test_channel_silence_is_that_channel_only(state: ModerationState) -> None:
    state.silence("#dev", None)
    decision = state.may_post("Léa", S, "#dev")
    assert decision.refusal is Refusal.SILENCE
    assert "dans #dev" in decision.notice
    assert state.may_post("Léa", S, "#general").allowed
    assert state.silence_of("#dev") is not None
    assert state.silence_of(None) is None


# --- slow mode -----------------------------------------------------------------------


def test_slow_mode_seconds_left(state: ModerationState, clock: Clock) -> None:
    state.set_slow("#general", 30)
    assert state.may_post("Léa", S, "#general").allowed
    clock.now = T0 + 10
    decision = state.may_post("Léa", S, "#general")
    assert decision.refusal is Refusal.SLOW
    assert decision.retry_after == 20
    assert decision.notice == texts.MOD_SLOW_POST.format(where=" dans #general", seconds=20)
    clock.now = T0 + 29.5
    assert state.may_post("Léa", S, "#general").retry_after == 1  # rounded up, never 0
    assert state.may_post("Bob", S, "#general").allowed  # each student has their own
    assert state.may_post("Léa", S, "#dev").allowed  # another channel is not slow
    clock.now = T0 + 30
    assert state.may_post("Léa", S, "#general").allowed
    clock.now = T0 + 31
    assert state.may_post("Léa", S, "#general").retry_after == 29  # counted from the last post


def test_a_refused_post_does_not_restart_the_wait(state: ModerationState, clock: Clock) -> None:
    state.set_slow(None, 30)
    state.may_post("Léa", S)
    clock.now = T0 + 20
    assert not state.may_post("Léa", S).allowed
    clock.now = T0 + 30
    assert state.may_post("Léa", S).allowed


def test_slow_mode_spares_staff_and_names_follow_the_key(
    state: ModerationState, clock: Clock
) -> None:
    state.set_slow(None, 60)
    for _ in range(3):
        assert state.may_post("Prof", T, "#general") is ALLOWED
        assert state.may_post("Modo", M, "#general") is ALLOWED
    state.may_post("alice", S, "#general")
    assert state.may_post(f"{CYRILLIC_A}lice", S, "#dev").refusal is Refusal.SLOW


def test_global_and_channel_slow_modes_both_count(state: ModerationState, clock: Clock) -> None:
    state.set_slow(None, 10)
    state.set_slow("#dev", 60)
    assert state.may_post("Léa", S, "#dev").allowed
    clock.now = T0 + 15
    decision = state.may_post("Léa", S, "#dev")
    assert decision.retry_after == 45
    assert "dans #dev" in decision.notice
    assert state.may_post("Léa", S, "#general").allowed  # 15 s > 10 s server-wide


def test_clearing_slow_mode_forgets_the_last_posts(state: ModerationState, clock: Clock) -> None:
    state.set_slow("#dev", 60)
    state.may_post("Léa", S, "#dev")
    assert state.clear_slow("#dev") is not None
    state.set_slow("#dev", 60)
    assert state.may_post("Léa", S, "#dev").allowed
    assert state.clear_slow("#nope") is None


def test_expire_prunes_old_last_posts(state: ModerationState, clock: Clock) -> None:
    state.set_slow(None, 30)
    for i in range(100):
        state.may_post(f"élève{i}", S)
    clock.now += 30
    state.expire()
    assert state._last_post == {}


def test_mute_comes_before_silence_and_slow(state: ModerationState) -> None:
    state.set_slow(None, 30)
    state.silence(None, None)
    state.mute("Léa", None)
    assert state.may_post("Léa", S).refusal is Refusal.MUTED
    assert state.may_post("Bob", S).refusal is Refusal.SILENCE


# --- private messages ------------------------------------------------------------------


def test_private_off_for_everyone(state: ModerationState) -> None:
    assert state.set_private(False, actor="prof")
    assert not state.set_private(False)  # no change
    refused = state.may_private("Léa", S, "Bob", S)
    assert refused.refusal is Refusal.PRIVATE_OFF
    assert refused.notice == texts.MOD_PRIVATE_OFF
    for staff in (M, T):
        assert state.may_private("Léa", S, "Prof", staff) is ALLOWED
        assert state.may_private("Prof", staff, "Léa", S) is ALLOWED
    assert state.may_post("Léa", S).allowed  # the room is not affected


def test_private_off_for_one_student_both_ways(state: ModerationState) -> None:
    state.set_private(False, "Léa")
    assert state.may_private("Léa", S, "Bob", S).notice == texts.MOD_PRIVATE_OFF
    assert state.may_private("Bob", S, "LÉA", S).notice == (
        texts.MOD_PRIVATE_OFF_RECIPIENT.format(name="LÉA")
    )
    assert state.may_private("Bob", S, "Zoé", S) is ALLOWED
    assert state.may_private("Léa", S, "Prof", T) is ALLOWED


def test_private_exceptions_against_the_server_wide_setting(state: ModerationState) -> None:
    state.set_private(False, "Bob")  # Bob alone is locked
    state.set_private(False)  # then everyone: Bob's own lock is now pointless
    state.set_private(True, "Léa")  # Léa is let through
    assert state.private_allowed("Léa")
    assert not state.private_allowed("Zoé")
    assert state.may_private("Léa", S, "Zoé", S).refusal is Refusal.PRIVATE_OFF  # Zoé locked
    state.set_private(True)  # everyone back: Léa's exception is pointless too
    assert state.private_exceptions() == []
    assert state.private_allowed("Bob")  # Bob's lock was dropped by the server-wide one
    state.set_private(False, "Bob")
    state.set_private(True)  # no server-wide lock in between: Bob's own lock stays
    assert not state.private_allowed("Bob")
    assert state.set_private(True, "Bob")
    assert not state.set_private(True, "Bob")  # already allowed: nothing changes
    assert state.private_exceptions() == []


# --- bans ------------------------------------------------------------------------------


def test_a_timed_ban_ends_by_itself(state: ModerationState, clock: Clock) -> None:
    state.ban("Bob", T0 + 3600, "insultes", "prof")
    assert state.ban_of("bob") is not None
    assert state.may_post("Bob", S).allowed  # a ban is checked at login, not per post
    assert state.next_expiry() == T0 + 3600
    clock.now = T0 + 3600
    assert state.ban_of("Bob") is None
    assert state.expire() == [Expiry(RuleKind.BAN, "Bob", None, T0 + 3600)]
    assert state.unban("Bob") is None


def test_next_expiry_and_expire_in_order(state: ModerationState, clock: Clock) -> None:
    state.mute("Léa", T0 + 300)
    state.silence("#dev", T0 + 100)
    state.ban("Bob", T0 + 200)
    state.mute("Zoé", None)
    assert state.next_expiry() == T0 + 100
    clock.now = T0 + 1000
    assert [e.until for e in state.expire()] == [T0 + 100, T0 + 200, T0 + 300]
    assert state.next_expiry() is None
    assert [m.name for m in state.mutes()] == ["Zoé"]


def test_version_changes_on_every_change(state: ModerationState, clock: Clock) -> None:
    seen = [state.version]
    state.mute("Léa", T0 + 10)
    seen.append(state.version)
    state.may_post("Léa", S)  # no change
    seen.append(state.version)
    clock.now += 10
    state.may_post("Léa", S)  # lazy expiry is a change
    seen.append(state.version)
    assert seen[0] < seen[1] == seen[2] < seen[3]


# --- persistence -----------------------------------------------------------------------


def busy_state(clock: Clock) -> ModerationState:
    state = ModerationState(clock, UTC)
    state.mute("Léa", T0 + 600, "bavardages", "prof")
    state.mute("Zoé", None, "", "modo")
    state.ban("Bob", None, "insultes", "prof")
    state.ban("Max", T0 + 86_400, "", "prof")
    state.silence(None, T0 + 300, "prof")
    state.silence("#dev", None, "modo")
    state.set_slow(None, 10, "prof")
    state.set_slow("#dev", 60, "modo")
    state.set_private(False, "Tom", "modo")
    state.set_private(False, actor="prof")
    state.set_private(True, "Léa", "prof")
    return state


def test_rows_round_trip(clock: Clock) -> None:
    state = busy_state(clock)
    rows = state.to_rows()
    assert {r.kind for r in rows} == {k.value for k in RuleKind}
    # Through plain tuples, as SQLite gives them back, in any order.
    loaded = ModerationState.from_rows([r.as_tuple() for r in reversed(rows)], clock, UTC)
    assert sorted(loaded.to_rows(), key=repr) == sorted(rows, key=repr)
    assert loaded.version == 0
    for probe in (
        lambda s: s.may_post("Léa", S, "#general"),
        lambda s: s.may_post("Zoé", S, "#dev"),
        lambda s: s.may_post("Tom", S, "#dev"),
        lambda s: s.may_private("Léa", S, "Tom", S),
        lambda s: s.may_private("Tom", S, "Zoé", S),
        lambda s: s.ban_of("bob"),
        lambda s: s.slow_of("#dev"),
        lambda s: s.private_allowed("Léa"),
    ):
        assert probe(loaded) == probe(state)


def test_row_shape() -> None:
    row = RuleRow("mute", "léa", "Léa", "", T0 + 600, 0, "bavardages", "prof", T0)
    assert row.as_tuple() == ("mute", "léa", "Léa", "", T0 + 600, 0, "bavardages", "prof", T0)
    assert RuleRow.from_tuple(row.as_tuple()) == row
    assert RuleRow.from_tuple(("slow", "", "", "#dev", None, 30, "", "m", 5)).since == 5.0


@pytest.mark.parametrize(
    "row",
    [
        ("mute", "léa", "Léa", "", None, 0, "", "prof"),
        ("frobnicate", "", "", "", None, 0, "", "prof", T0),
        ("mute", "léa", "Léa", "", "soon", 0, "", "prof", T0),
        ("slow", "", "", "#dev", None, "30", "", "prof", T0),
        ("slow", "", "", "#dev", None, True, "", "prof", T0),
        ("mute", None, "Léa", "", None, 0, "", "prof", T0),
    ],
)
def test_malformed_rows_are_a_storage_error(row: tuple[object, ...]) -> None:
    with pytest.raises(StorageError):
        ModerationState.from_rows([row])


def test_rules_that_ended_while_down_come_out_of_the_first_expire(clock: Clock) -> None:
    rows = busy_state(clock).to_rows()
    clock.now = T0 + 2 * 86_400
    loaded = ModerationState.from_rows(rows, clock, UTC)
    ended = loaded.expire()
    assert [(e.kind, e.name or e.channel) for e in ended] == [
        (RuleKind.SILENCE, None),
        (RuleKind.MUTE, "Léa"),
        (RuleKind.BAN, "Max"),
    ]


# --- the log ---------------------------------------------------------------------------

# What a fail2ban filter can anchor on: every field, in order, a bare or quoted value.
VALUE = r'(?:-|"(?:[^"\\]|\\.)*"|[^\s"\\=]+)'
LINE = re.compile(
    rf"^moderation: actor=(?P<actor>{VALUE}) action=(?P<action>[a-z_]+)"
    rf" target=(?P<target>{VALUE}) until=(?P<until>\S+) reason=(?P<reason>{VALUE})"
    rf" channel=(?P<channel>{VALUE}) detail=(?P<detail>{VALUE})$"
)


def test_log_line_format() -> None:
    entry = LogEntry(T0, "prof", Action.MUTE, "Léa", T0 + 600, "bavardages en classe")
    assert format_log_line(entry, UTC) == (
        "moderation: actor=prof action=mute target=Léa until=2026-12-01T14:10:00+00:00"
        ' reason="bavardages en classe" channel=- detail=-'
    )
    slow = LogEntry(T0, "modo", Action.SLOW, channel="#dev", detail="30")
    assert format_log_line(slow, UTC) == (
        "moderation: actor=modo action=slow target=- until=- reason=- channel=#dev detail=30"
    )


@pytest.mark.parametrize(
    "evil",
    [
        "Léa\nmoderation: actor=prof action=ban target=Bob",
        "x\r\nauth failure: user=root addr=10.0.0.1",
        "a\u2028b\u2029c\x85d\x0be\x1cf",
        'quote " and \\ backslash',
        "x action=ban",
        "a=b",
        "\u202egnp.exe",
        "tab\there",
        "",
    ],
)
def test_log_line_safety(evil: str) -> None:
    entry = LogEntry(T0, evil, Action.KICK, evil, None, evil, evil, evil)
    line = format_log_line(entry, UTC)
    assert len(line.splitlines()) == 1
    assert line.isprintable()
    assert line.count("=") == 7  # no value carries an "=" a filter could match
    match = LINE.match(line)
    assert match is not None, line
    assert match["action"] == "kick"


@given(st.text(max_size=300))
def test_any_value_stays_one_field_on_one_line(value: str) -> None:
    line = format_log_line(LogEntry(T0, value, Action.BAN, value, None, value), UTC)
    assert len(line.splitlines()) == 1
    assert line.isprintable()
    assert line.count("=") == 7
    match = LINE.match(line)
    assert match is not None
    assert match["action"] == "ban"


def test_log_values_stay_readable_and_bounded() -> None:
    assert log_value("Léa", 200) == "Léa"
    assert log_value("Léa Martin", 200) == '"Léa Martin"'
    assert log_value("", 200) == "-"
    assert log_value("é" * 300, 200) == "é" * 200 + "..."


def test_log_entry_rows_and_json() -> None:
    entry = LogEntry(T0, "prof", Action.ROLE, "Léa", None, "", "", "moderator")
    assert LogEntry.from_tuple(entry.as_tuple()) == entry
    assert entry.as_json(UTC) == {
        "time": "2026-12-01T14:00:00+00:00",
        "actor": "prof",
        "action": "role",
        "target": "Léa",
        "until": None,
        "reason": "",
        "channel": "",
        "detail": "moderator",
    }
    with pytest.raises(StorageError):
        LogEntry.from_tuple((T0, "prof", "nuke", "", None, "", "", ""))
    with pytest.raises(StorageError):
        LogEntry.from_tuple((T0, "prof", "mute"))
    with pytest.raises(StorageError):
        LogEntry.from_tuple(("now", "prof", "mute", "", None, "", "", ""))


def test_expiry_is_logged_and_announced() -> None:
    mute = Expiry(RuleKind.MUTE, "Léa", None, T0)
    assert expiry_entry(mute) == LogEntry(
        T0, "Serveur", Action.UNMUTE, "Léa", reason=texts.MOD_EXPIRED
    )
    assert expiry_announcement(mute) == "Léa n'est plus en sourdine."
    silence = Expiry(RuleKind.SILENCE, "", "#dev", T0)
    assert expiry_entry(silence).action is Action.UNSILENCE
    assert expiry_entry(silence).channel == "#dev"
    assert (
        expiry_announcement(silence) == "Fin du silence dans #dev : vous pouvez écrire à nouveau."
    )
    ban = Expiry(RuleKind.BAN, "Bob", None, T0)
    assert expiry_entry(ban).action is Action.UNBAN
    assert expiry_announcement(ban) is None


def test_format_modlog() -> None:
    entries = [
        LogEntry(T0, "prof", Action.MUTE, "Léa", T0 + 600, "bavardages"),
        LogEntry(T0 + 60, "modo", Action.SLOW, channel="#dev", detail="30"),
    ]
    assert format_modlog(entries, T0, UTC) == [
        "01/12 14:00 prof mute Léa jusqu'à 14:10 (raison : bavardages)",
        "01/12 14:01 modo slow 30 dans #dev",
    ]
    assert format_modlog([], T0, UTC) == [texts.MOD_LOG_EMPTY]


def test_a_muted_moderator_reaches_staff_only_in_private(state: ModerationState) -> None:
    state.mute("Modo", None, actor="prof")
    assert state.may_private("Modo", M, "Léa", S).refusal is Refusal.MUTED
    assert state.may_private("Modo", M, "Prof", T) is ALLOWED
    assert state.may_private("Prof", T, "Léa", S) is ALLOWED  # staff not muted: free


def test_saved_rules_are_keyed_by_the_current_identity_rule() -> None:
    row = moderation.RuleRow("mute", "stale-key", "Léa", "", None, 0, "", "prof", T0)
    state = ModerationState.from_rows([row])
    assert state.mute_of("LÉA") is not None
