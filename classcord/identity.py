"""The one rule that says which names are allowed and when two names are the same.

In the spirit of RFC 8265 (PRECIS, UsernameCaseMapped) and UTS #39 (security
mechanisms), with the standard library's Unicode data only:

- A name is refused when it holds a control, format, private-use, unassigned or
  surrogate character; a default-ignorable or blank-looking character (U+034F,
  U+200B, U+3164, U+FFA0, U+2800...); any space but U+0020 or a space at either
  end; or letters of two scripts that can pose as each other (Latin with Cyrillic
  or Greek, for example "alice" whose first letter is U+0430 CYRILLIC SMALL A).
- Two names are the same when their keys are equal. The key is the NFKC form
  (fullwidth U+FF41 and math-bold U+1D41A become "a", NFD "zoe" + U+0301 becomes
  NFC),
  case-folded, with the Cyrillic and Greek letters that look like Latin ones
  mapped to those (a small confusables skeleton), so a whole-script look-alike
  written in Cyrillic only (U+0430 U+0441 U+0435) has the key of "ace".

Every comparison and reservation of names uses ``name_key``: registration, login
throttling, guests, presence, private messages, history, admin commands.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Final

from classcord import texts

# Characters that show nothing or look blank, beyond the Cf/Zs categories: Unicode's
# Default_Ignorable_Code_Point ranges and the fillers that render as a space.
_INVISIBLE_RANGES: Final = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})

# Scripts whose letters can pose as each other's: a name may use one of them only.
_CONFUSABLE_SCRIPTS: Final = {
    "LATIN": "latin",
    "CYRILLIC": "cyrillique",
    "GREEK": "grec",
    "ARMENIAN": "arménien",
    "CHEROKEE": "cherokee",
}

# Cyrillic and Greek small letters (names as in the Unicode database) that look like
# a Latin letter: a small confusables skeleton, spelled in ASCII on purpose.
_LOOK_ALIKES: Final = (
    ("CYRILLIC", "A", "a"),
    ("CYRILLIC", "VE", "b"),
    ("CYRILLIC", "ES", "c"),
    ("CYRILLIC", "KOMI DE", "d"),
    ("CYRILLIC", "IE", "e"),
    ("CYRILLIC", "SHHA", "h"),
    ("CYRILLIC", "BYELORUSSIAN-UKRAINIAN I", "i"),
    ("CYRILLIC", "JE", "j"),
    ("CYRILLIC", "KA", "k"),
    ("CYRILLIC", "PALOCHKA", "l"),
    ("CYRILLIC", "EM", "m"),
    ("CYRILLIC", "EN", "h"),
    ("CYRILLIC", "O", "o"),
    ("CYRILLIC", "ER", "p"),
    ("CYRILLIC", "QA", "q"),
    ("CYRILLIC", "DZE", "s"),
    ("CYRILLIC", "TE", "t"),
    ("CYRILLIC", "TSE", "u"),
    ("CYRILLIC", "IZHITSA", "v"),
    ("CYRILLIC", "WE", "w"),
    ("CYRILLIC", "HA", "x"),
    ("CYRILLIC", "U", "y"),
    ("CYRILLIC", "IO", "e"),
    ("CYRILLIC", "YI", "i"),
    ("CYRILLIC", "GHE", "r"),
    ("CYRILLIC", "PE", "n"),
    ("CYRILLIC", "SOFT SIGN", "b"),
    ("GREEK", "ALPHA", "a"),
    ("GREEK", "BETA", "b"),
    ("GREEK", "EPSILON", "e"),
    ("GREEK", "ETA", "n"),
    ("GREEK", "IOTA", "i"),
    ("GREEK", "KAPPA", "k"),
    ("GREEK", "NU", "v"),
    ("GREEK", "OMICRON", "o"),
    ("GREEK", "RHO", "p"),
    ("GREEK", "TAU", "t"),
    ("GREEK", "UPSILON", "u"),
    ("GREEK", "CHI", "x"),
    ("GREEK", "GAMMA", "y"),
    ("GREEK", "OMEGA", "w"),
    ("GREEK", "FINAL SIGMA", "c"),
    ("GREEK", "SIGMA", "o"),
)
_SKELETON: Final = str.maketrans(
    {
        unicodedata.lookup(f"{script} SMALL LETTER {letter}"): latin
        for script, letter, latin in _LOOK_ALIKES
    }
)


def name_key(name: str) -> str:
    """The identity of a name: equal keys are the same name."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return folded.translate(_SKELETON)


def _invisible(code: int) -> bool:
    return any(low <= code <= high for low, high in _INVISIBLE_RANGES)


def _script(char: str) -> str | None:
    """The script of a letter, from its Unicode name (LATIN SMALL LETTER A: LATIN)."""
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0] if name else None


def name_problem(name: str, max_chars: int) -> str | None:
    """Why ``name`` cannot be a user or guest name (a French text), or None."""
    if not 0 < len(name) <= max_chars:
        return texts.NAME_LENGTH.format(limit=max_chars)
    if name != name.strip():
        return texts.NAME_OUTER_SPACE
    scripts: set[str] = set()
    for char in name:
        category = unicodedata.category(char)
        if category in _REFUSED_CATEGORIES or _invisible(ord(char)):
            return texts.NAME_INVISIBLE.format(code=f"U+{ord(char):04X}")
        if category == "Zs" and char != " ":
            return texts.NAME_INVISIBLE.format(code=f"U+{ord(char):04X}")
        script = _script(char)
        if script is not None and script in _CONFUSABLE_SCRIPTS:
            scripts.add(_CONFUSABLE_SCRIPTS[script])
    if len(scripts) > 1:
        return texts.NAME_MIXED_SCRIPTS.format(scripts=", ".join(sorted(scripts)))
    return None


def is_valid_name(name: str, max_chars: int) -> bool:
    return name_problem(name, max_chars) is None


# Names nobody may register: notices come from Serveur, and every guest of client
# family C asks for invité (so an account of that name would collect their talk).
RESERVED_FOR_ACCOUNTS: Final = frozenset({name_key(texts.SERVER_NAME), name_key(texts.GUEST_NAME)})
# Guests may be called invité (that is the default), never Serveur.
RESERVED_FOR_GUESTS: Final = frozenset({name_key(texts.SERVER_NAME)})


def is_reserved_name(name: str) -> bool:
    """Reserved for accounts: Serveur, invité and every look-alike of them."""
    return name_key(name) in RESERVED_FOR_ACCOUNTS


def collisions(names: Iterable[str]) -> list[list[str]]:
    """Groups of names that are one name under this rule (accounts made before it),
    or that it reserves; each group sorted, the groups by their first name."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name_key(name), []).append(name)
    found = [
        sorted(group)
        for key, group in groups.items()
        if len(group) > 1 or key in RESERVED_FOR_ACCOUNTS
    ]
    return sorted(found)


def is_reserved_for_guests(name: str) -> bool:
    return name_key(name) in RESERVED_FOR_GUESTS
