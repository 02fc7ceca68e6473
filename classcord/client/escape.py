"""Untrusted text made safe for a terminal: what the server relays comes from anyone."""

from __future__ import annotations

import json
import unicodedata
from typing import Final

UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cs", "Zl", "Zp"})
BIDI_CONTROLS: Final = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def clean(text: str) -> str:
    """Make remote text safe for a terminal: control, bidi and separator characters
    are shown escaped, so nobody can move the cursor, recolour or reorder a screen."""
    if text.isprintable():
        return text
    return "".join(
        ch.encode("unicode_escape", errors="backslashreplace").decode("ascii")
        if ch in BIDI_CONTROLS or unicodedata.category(ch) in UNSAFE_CATEGORIES
        else ch
        for ch in text
    )


def clean_block(text: str, indent: int) -> str:
    """Clean each line of a multi-line text; continuation lines are indented."""
    lines = [clean(line) for line in text.split("\n")]
    return ("\n" + " " * indent).join(lines)


def text_of(value: object) -> str:
    """A field of a server line as text: None is empty, a non-string its JSON."""
    return value if isinstance(value, str) else "" if value is None else json.dumps(value)
