"""The identity rule for names (identity.py): what is refused, what is the same."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from classcord.identity import (
    collisions,
    is_reserved_for_guests,
    is_reserved_name,
    is_valid_name,
    name_key,
    name_problem,
)

CYRILLIC_A = "\u0430"


@pytest.mark.parametrize(
    ("look_alike", "original"),
    [
        ("ａlice", "alice"),  # fullwidth
        ("𝐚𝐥𝐢𝐜𝐞", "alice"),  # mathematical bold
        ("ALICE", "alice"),
        ("zoe\u0301", "zoé"),  # NFD
        ("\u0430\u0441\u0435", "ace"),  # Cyrillic only, looks Latin
        ("Stra\u00dfe", "strasse"),
    ],
)
def test_look_alikes_have_the_same_key(look_alike: str, original: str) -> None:
    assert name_key(look_alike) == name_key(original)


@pytest.mark.parametrize(
    "name",
    [
        CYRILLIC_A + "lice",  # mixed Cyrillic and Latin
        "S\u0435rveur",  # Cyrillic e in Serveur
        "alice\u034f",  # combining grapheme joiner (invisible)
        "ali\u200bce",  # zero-width space
        "\u3164",  # Hangul filler
        "\uffa0bob",  # halfwidth Hangul filler
        "\u2800",  # Braille blank
        "ab\u00a0cd",  # no-break space
        "a\u202ebc",  # right-to-left override
        "tab\there",
        " alice",
        "",
        "a" * 65,
        "\ud800x",  # lone surrogate
    ],
)
def test_refused_names(name: str) -> None:
    problem = name_problem(name, 64)
    assert problem is not None, name
    assert problem.startswith("Nom invalide"), (name, problem)


@pytest.mark.parametrize("name", ["alice", "Zoé", "jean-luc", "ab cd", "山田", "Дмитрий", "Νίκος"])
def test_ordinary_names_of_every_script_pass(name: str) -> None:
    assert is_valid_name(name, 64)


def test_reserved_names_and_their_look_alikes() -> None:
    for name in ("Serveur", "SERVEUR", "Ｓerveur", "invité", "INVITÉ", "invite\u0301"):
        assert is_reserved_name(name), name
    assert is_reserved_for_guests("serveur")
    assert not is_reserved_for_guests("invité")  # the default guest name
    assert not is_reserved_name("alice")


@given(st.text(max_size=20))
def test_the_key_is_stable_and_a_valid_name_has_no_invisible_character(name: str) -> None:
    key = name_key(name)
    assert name_key(key) == key or not is_valid_name(name, 64)
    if is_valid_name(name, 64):
        assert all(unicodedata.category(c)[0] != "C" for c in name)
        assert name == name.strip()


def test_collisions_report_accounts_that_the_rule_makes_one() -> None:
    existing = ["alice", "ａlice", "Bob", "bob", "zoé", "zoe\u0301", "carol", "Serveur2", "Invité"]
    assert collisions(existing) == [
        ["Bob", "bob"],
        ["Invité"],
        ["alice", "ａlice"],
        ["zoe\u0301", "zo\u00e9"],
    ]
