"""Moderation commands typed as chat content (moderation_commands.py): every command,
every typo, who may use what, and what everybody reads afterwards."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from classcord import texts
from classcord.errors import InternalError
from classcord.moderation import (
    Action,
    LogEntry,
    ModerationLimits,
    ModerationState,
    Refusal,
    Role,
)
from classcord.moderation_commands import (
    USAGE,
    VERB,
    VERBS,
    Announce,
    BadUsage,
    Ban,
    Command,
    Delete,
    Help,
    Kick,
    ModLog,
    Mute,
    Outcome,
    Private,
    Reserved,
    SetRole,
    Silence,
    Slow,
    Unban,
    Unmute,
    Unsilence,
    Unslow,
    Who,
    apply_rule,
    authorize,
    intercept,
    outcome_announce,
    outcome_delete,
    outcome_kick,
    outcome_role,
    parse_command,
    split_verb,
    target_of,
)

LIMITS = ModerationLimits()
T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC).timestamp()
S, M, T = Role.STUDENT, Role.MODERATOR, Role.TEACHER
CYRILLIC_E = "\u0435"


def staff(content: str) -> object:
    return intercept(content, T, LIMITS)


@pytest.mark.parametrize(
    ("content", "command"),
    [
        ("/mute Léa", Mute("Léa", None)),
        ("/mute Léa 10m", Mute("Léa", 600)),
        ("/mute Léa 10m bavardages en classe", Mute("Léa", 600, "bavardages en classe")),
        ("/mute Léa trop de bruit", Mute("Léa", None, "trop de bruit")),
        ('/mute "Léa Martin" 1h30m', Mute("Léa Martin", 5400)),
        ("/mute\tLéa   2j  ", Mute("Léa", 172_800)),
        ("  /mute Léa", Mute("Léa", None)),
        ("/MUTE Léa", Mute("Léa", None)),
        ("/ｍｕｔｅ Léa", Mute("Léa", None)),
        ("/unmute Léa", Unmute("Léa")),
        ("/unmute Léa Martin", Unmute("Léa Martin")),
        ('/unmute "Léa Martin"', Unmute("Léa Martin")),
        ("/silence", Silence(None)),
        ("/silence on", Silence(None)),
        ("/silence 10m", Silence(None, 600)),
        ("/silence #Dev", Silence("#dev")),
        ("/silence #dev 5m", Silence("#dev", 300)),
        ("/silence 5m #dev", Silence("#dev", 300)),
        ("/silence off", Unsilence(None)),
        ("/silence OFF", Unsilence(None)),
        ("/silence #dev off", Unsilence("#dev")),
        ("/silence off #dev", Unsilence("#dev")),
        ("/slow 30", Slow(30)),
        ("/slow 30s", Slow(30)),
        ("/slow 2m #dev", Slow(120, "#dev")),
        ("/slow #dev 10", Slow(10, "#dev")),
        ("/slow off", Unslow(None)),
        ("/slow off #dev", Unslow("#dev")),
        ("/private off", Private(False)),
        ("/private on", Private(True)),
        ("/private off Léa", Private(False, "Léa")),
        ("/private ON Léa Martin", Private(True, "Léa Martin")),
        ("/delete Léa", Delete("Léa", 1)),
        ("/delete Léa 3", Delete("Léa", 3)),
        ("/delete Léa Martin 3", Delete("Léa Martin", 3)),
        ('/delete "Agent 007"', Delete("Agent 007", 1)),
        ('/delete "Léa Martin" 3', Delete("Léa Martin", 3)),
        ('/kick "Léa Martin" bavardages', Kick("Léa Martin", "bavardages")),
        ("/kick Bob", Kick("Bob")),
        ("/kick Bob assez pour aujourd'hui", Kick("Bob", "assez pour aujourd'hui")),
        ("/ban Bob", Ban("Bob", None)),
        ("/ban Bob 2j insultes", Ban("Bob", 172_800, "insultes")),
        ("/ban Bob insultes", Ban("Bob", None, "insultes")),
        ("/unban Bob", Unban("Bob")),
        ("/announce Contrôle demain à 8 h !", Announce("Contrôle demain à 8 h !")),
        ("/announce  ligne 1\nligne 2 ", Announce("ligne 1\nligne 2")),
        ("/who", Who()),
        ("/who  ", Who()),
        ("/modlog", ModLog(LIMITS.default_modlog_entries)),
        ("/modlog 5", ModLog(5)),
        ("/role Léa moderator", SetRole("Léa", M)),
        ("/role Léa Martin modérateur", SetRole("Léa Martin", M)),
        ('/role "Léa Martin" student', SetRole("Léa Martin", S)),
        ("/role Léa élève", SetRole("Léa", S)),
        ("/aide", Help()),
        ("/help", Help()),
    ],
)
def test_every_command_parses(content: str, command: Command) -> None:
    assert staff(content) == command
    assert parse_command(content, LIMITS) == command


@pytest.mark.parametrize(
    ("content", "verb", "problem"),
    [
        ("/mute", "mute", texts.MOD_MISSING_NAME),
        ('/mute ""', "mute", texts.MOD_MISSING_NAME),
        ('/mute "Léa 10m', "mute", texts.MOD_UNCLOSED_QUOTE),
        ("/mute Léa 10x", "mute", "Durée invalide : 10x"),
        ("/mute Léa 10mn30", "mute", "Durée invalide : 10mn30"),
        ("/mute Léa 0m", "mute", "Durée invalide : 0m"),
        ("/mute Léa 31j", "mute", "Durée invalide : 31j"),
        ("/mute Léa 10m " + "x" * 201, "mute", "Raison trop longue"),
        ("/unmute", "unmute", texts.MOD_MISSING_NAME),
        ("/silence bla", "silence", "Durée invalide : bla"),
        ("/silence #dev off now", "silence", "Trop d'arguments : now"),
        ("/silence #d.v", "silence", "Salon invalide : #d.v"),
        ("/slow", "slow", texts.MOD_USAGE_SLOW),
        ("/slow 0", "slow", "Nombre invalide : 0"),
        ("/slow 3601", "slow", "Nombre invalide : 3601"),
        ("/slow 2h", "slow", "Durée invalide : 2h"),
        ("/slow vite", "slow", "Durée invalide : vite"),
        ("/slow 30 #dev extra", "slow", "Trop d'arguments : extra"),
        ("/private", "private", texts.MOD_USAGE_PRIVATE),
        ("/private maybe", "private", texts.MOD_USAGE_PRIVATE),
        ("/delete", "delete", texts.MOD_MISSING_NAME),
        ("/delete Léa 0", "delete", "Nombre invalide : 0"),
        ("/delete Léa 51", "delete", "Nombre invalide : 51"),
        ("/kick", "kick", texts.MOD_MISSING_NAME),
        ("/ban", "ban", texts.MOD_MISSING_NAME),
        ("/ban Bob 2ans", "ban", "Durée invalide : 2ans"),
        ("/unban", "unban", texts.MOD_MISSING_NAME),
        ("/announce", "announce", texts.MOD_MISSING_TEXT),
        ("/announce    ", "announce", texts.MOD_MISSING_TEXT),
        ("/who Léa", "who", "Trop d'arguments : Léa"),
        ("/modlog 0", "modlog", "Nombre invalide : 0"),
        ("/modlog 101", "modlog", "Nombre invalide : 101"),
        ("/modlog tout", "modlog", "Nombre invalide : tout"),
        ("/modlog 5 6", "modlog", "Trop d'arguments : 6"),
        ("/role", "role", texts.MOD_USAGE_ROLE),
        ("/role Léa", "role", texts.MOD_USAGE_ROLE),
        ("/role Léa admin", "role", "Rôle invalide : admin"),
        ("/role Léa teacher", "role", texts.MOD_TEACHER_FROM_VM),
        ("/role Léa Professeur", "role", texts.MOD_TEACHER_FROM_VM),
        (f"/role Léa t{CYRILLIC_E}acher", "role", texts.MOD_TEACHER_FROM_VM),
    ],
)
def test_a_typo_gets_its_usage_line(content: str, verb: str, problem: str) -> None:
    result = staff(content)
    assert isinstance(result, BadUsage), result
    assert result.verb == verb
    assert result.message.startswith(problem)
    assert result.message.endswith(USAGE[verb])


def test_a_staff_word_that_is_no_command_gets_the_list() -> None:
    result = staff("/mtue Léa")
    assert isinstance(result, BadUsage)
    assert result.message == f"Commande inconnue : /mtue. {texts.MOD_HELP}"


@pytest.mark.parametrize(
    "content",
    [
        "bonjour",
        "",
        "   ",
        "/join #dev",
        "/leave #dev",
        "/join",
        "/",
        "/ mute Léa",
        "//mute Léa",
        "/home/eleve/tp1.py ne marche pas",
        "/123",
        ":) /mute",
        "a/mute Léa",
    ],
)
def test_what_is_not_a_moderation_command_goes_on_as_today(content: str) -> None:
    for role in Role:
        assert intercept(content, role, LIMITS) is None, (role, content)


def test_a_student_word_that_is_no_command_is_an_ordinary_message() -> None:
    assert intercept("/shrug", S, LIMITS) is None
    assert intercept("/aide", S, LIMITS) is None  # help is for staff only
    assert isinstance(intercept("/shrug", M, LIMITS), BadUsage)


# --- who may use what ------------------------------------------------------------------

SPELLINGS = [
    "/{verb} Léa",
    "/{verb}",
    "/{VERB} Léa 10m",
    "  /{verb} Léa",
    "/{fullwidth} Léa",
    "/{verb}\nLéa",
]


@pytest.mark.parametrize("verb", sorted(VERBS))
@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_student_can_never_run_a_command(verb: str, spelling: str) -> None:
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in verb)
    content = spelling.format(verb=verb, VERB=verb.upper(), fullwidth=fullwidth)
    result = intercept(content, S, LIMITS)
    assert result == Reserved(verb, texts.MOD_RESERVED.format(verb=verb))


@pytest.mark.parametrize("verb", ["ban", "unban", "role"])
def test_a_moderator_cannot_run_a_teacher_command(verb: str) -> None:
    result = intercept(f"/{verb} Léa moderator", M, LIMITS)
    assert result == Reserved(verb, texts.MOD_TEACHER_ONLY.format(verb=verb))
    assert isinstance(intercept(f"/{verb} Léa moderator", T, LIMITS), SetRole | Ban | Unban)


@given(st.text(max_size=200))
def test_whatever_a_student_sends_is_never_a_command(content: str) -> None:
    result = intercept(content, S, LIMITS)
    assert result is None or isinstance(result, Reserved)


@given(st.text(max_size=200), st.sampled_from([M, T]))
def test_any_staff_input_parses_without_raising(content: str, role: Role) -> None:
    intercept(content, role, LIMITS)
    intercept("/" + content, role, LIMITS)


@given(st.sampled_from(sorted(VERBS)), st.text(max_size=100))
def test_any_arguments_to_a_verb_give_a_command_or_a_usage_line(verb: str, rest: str) -> None:
    result = intercept(f"/{verb} {rest}", T, LIMITS)
    assert result is not None
    assert not isinstance(result, Reserved)


ONE_OF_EACH: list[Command] = [
    Mute("Léa", 600),
    Unmute("Léa"),
    Silence(None),
    Unsilence("#dev"),
    Slow(30),
    Unslow(None),
    Private(False),
    Private(True, "Léa"),
    Delete("Léa", 2),
    Kick("Léa"),
    Ban("Léa", None),
    Unban("Léa"),
    Announce("Bonjour"),
    Who(),
    ModLog(5),
    SetRole("Léa", M),
    Help(),
]


@pytest.mark.parametrize("command", ONE_OF_EACH)
@pytest.mark.parametrize("target_role", list(Role))
def test_authorize_matrix(command: Command, target_role: Role) -> None:
    verb = VERB[type(command)]
    has_target = target_of(command) is not None
    role_arg = target_role if has_target else None
    # A student: never, whatever the target.
    assert authorize(S, command, role_arg) == texts.MOD_RESERVED.format(verb=verb)
    for actor in (M, T):
        refusal = authorize(actor, command, role_arg)
        if verb in {"ban", "unban", "role"} and actor is M:
            assert refusal == texts.MOD_TEACHER_ONLY.format(verb=verb)
        elif not has_target:
            assert refusal is None
        elif isinstance(command, SetRole):
            assert (refusal is None) is (target_role is not T)
        else:
            allowed = (actor is T and target_role is not T) or (actor is M and target_role is S)
            assert (refusal is None) is allowed, (actor, command, target_role, refusal)


def test_a_moderator_cannot_act_on_a_teacher() -> None:
    refusal = authorize(M, Mute("Prof", None), T)
    assert refusal == "Impossible : Prof est professeur."
    assert authorize(M, Kick("Modo2"), M) == "Impossible : Modo2 est modérateur."
    assert authorize(T, Mute("Prof2", None), T) == "Impossible : Prof2 est professeur."


def test_set_role_teacher_is_refused_even_if_built_by_hand() -> None:
    assert authorize(T, SetRole("Léa", T), S) == texts.MOD_TEACHER_FROM_VM


def test_authorize_without_the_target_role_is_a_bug() -> None:
    with pytest.raises(InternalError):
        authorize(T, Mute("Léa", None), None)


# --- effects ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def state() -> ModerationState:
    return ModerationState(Clock(), UTC)


def test_apply_mute_and_unmute(state: ModerationState) -> None:
    outcome = apply_rule(Mute("léa", 600, "bavardages"), state, "prof", target_name="Léa")
    assert outcome == Outcome(
        LogEntry(T0, "prof", Action.MUTE, "Léa", T0 + 600, "bavardages"),
        everyone="Léa est en sourdine jusqu'à 14:10.",
        target=(
            "Vous êtes en sourdine jusqu'à 14:10 (raison : bavardages)."
            " Vous pouvez toujours lire le chat."
        ),
    )
    assert state.may_post("LÉA", S).refusal is Refusal.MUTED
    outcome = apply_rule(Unmute("LÉA"), state, "prof")
    assert outcome.entry == LogEntry(T0, "prof", Action.UNMUTE, "Léa")
    assert outcome.everyone == "Léa n'est plus en sourdine."
    assert outcome.target == texts.MOD_YOU_UNMUTED
    again = apply_rule(Unmute("Léa"), state, "prof")
    assert again == Outcome(None, actor="Léa n'est pas en sourdine.")


def test_apply_silence(state: ModerationState) -> None:
    outcome = apply_rule(Silence(None, 300), state, "prof")
    assert outcome.entry == LogEntry(T0, "prof", Action.SILENCE, until=T0 + 300)
    assert outcome.everyone == (
        "Silence jusqu'à 14:05 : seuls le professeur et les modérateurs peuvent écrire."
        " Vous pouvez toujours lire."
    )
    assert not state.may_post("Léa", S, "#general").allowed
    off = apply_rule(Unsilence(None), state, "prof")
    assert off.everyone == "Fin du silence : vous pouvez écrire à nouveau."
    assert apply_rule(Unsilence("#dev"), state, "prof") == Outcome(
        None, actor="Pas de silence en cours dans #dev."
    )
    channel = apply_rule(Silence("#dev"), state, "modo")
    assert channel.entry is not None
    assert channel.entry.channel == "#dev"
    assert channel.everyone is not None
    assert channel.everyone.startswith("Silence dans #dev :")


def test_apply_slow(state: ModerationState) -> None:
    outcome = apply_rule(Slow(30, "#dev"), state, "modo")
    assert outcome.entry == LogEntry(T0, "modo", Action.SLOW, channel="#dev", detail="30")
    assert outcome.everyone == "Mode lent dans #dev : un message toutes les 30 s par personne."
    assert apply_rule(Unslow("#dev"), state, "modo").everyone == "Fin du mode lent dans #dev."
    assert apply_rule(Unslow(None), state, "modo") == Outcome(
        None, actor="Pas de mode lent en cours."
    )


def test_apply_private(state: ModerationState) -> None:
    everyone = apply_rule(Private(False), state, "prof")
    assert everyone.entry == LogEntry(T0, "prof", Action.PRIVATE_OFF)
    assert everyone.everyone == texts.MOD_ANNOUNCE_PRIVATE_OFF
    assert apply_rule(Private(False), state, "prof") == Outcome(None)  # already off
    one = apply_rule(Private(True, "léa"), state, "prof", target_name="Léa")
    assert one.entry == LogEntry(T0, "prof", Action.PRIVATE_ON, "Léa")
    assert one.target == texts.MOD_YOU_PRIVATE_ON
    assert one.actor == "Messages privés réactivés pour Léa."
    assert one.everyone is None  # a personal exception is not announced
    assert state.private_allowed("Léa")


def test_apply_ban_and_unban(state: ModerationState) -> None:
    outcome = apply_rule(Ban("Bob", 86_400, "insultes"), state, "prof")
    assert outcome.entry == LogEntry(T0, "prof", Action.BAN, "Bob", T0 + 86_400, "insultes")
    assert outcome.everyone == "Bob a été banni jusqu'au 02/12 à 14:00."
    assert outcome.target == "Votre compte est banni jusqu'au 02/12 à 14:00 (raison : insultes)."
    assert state.ban_of("bob") is not None
    unban = apply_rule(Unban("bob"), state, "prof")
    assert unban.entry == LogEntry(T0, "prof", Action.UNBAN, "Bob")
    assert unban.actor == "Bob n'est plus banni."
    assert unban.everyone is None
    assert apply_rule(Unban("bob"), state, "prof").actor == "bob n'est pas banni."


def test_outcomes_of_what_the_server_does() -> None:
    kick = outcome_kick("Bob", "spam", "modo", T0)
    assert kick.entry == LogEntry(T0, "modo", Action.KICK, "Bob", reason="spam")
    assert kick.everyone == "Bob a été déconnecté par la modération."
    assert kick.target == "Vous avez été déconnecté par la modération (raison : spam)."
    assert outcome_kick("Bob", "", "modo", T0).target == (
        "Vous avez été déconnecté par la modération."
    )
    one = outcome_delete("Léa", 1, "modo", T0)
    assert one.everyone == "Un message de Léa a été retiré par la modération."
    assert one.target == texts.MOD_YOUR_MESSAGE_REMOVED
    three = outcome_delete("Léa", 3, "modo", T0)
    assert three.entry == LogEntry(T0, "modo", Action.DELETE, "Léa", detail="3")
    assert three.everyone == "3 messages de Léa ont été retirés par la modération."
    assert three.target == "3 de vos messages ont été retirés par la modération."
    assert outcome_delete("Léa", 0, "modo", T0) == Outcome(
        None, actor="Aucun message de Léa à retirer."
    )
    announce = outcome_announce("Contrôle demain", "prof", T0)
    assert announce.everyone == "Contrôle demain"
    assert announce.entry == LogEntry(T0, "prof", Action.ANNOUNCE, detail="Contrôle demain")
    role = outcome_role("Léa", M, "prof", T0)
    assert role.entry == LogEntry(T0, "prof", Action.ROLE, "Léa", detail="moderator")
    assert role.everyone == "Léa est maintenant modérateur."
    assert role.target == "Vous êtes maintenant modérateur."


def test_split_verb() -> None:
    assert split_verb("/mute Léa") == ("mute", " Léa")
    assert split_verb(" \t/who") == ("who", "")
    assert split_verb("mute") is None
    assert split_verb("/") is None


@pytest.mark.parametrize("verb", sorted(v for v in VERBS if set(v) & set("aeo")))
def test_a_cyrillic_look_alike_verb_is_still_reserved(verb: str) -> None:
    look_alike = verb.translate(str.maketrans({"a": "\u0430", "e": "\u0435", "o": "\u043e"}))
    assert look_alike != verb
    assert intercept(f"/{look_alike} Léa", S, LIMITS) == Reserved(
        verb, texts.MOD_RESERVED.format(verb=verb)
    )
