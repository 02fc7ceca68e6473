"""Which name the server gave us as a guest: it does not say, so we compare lists."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from classcord.protocol import name_key
from classcord.texts import GUEST_NAME


def guest_name(requested: str | None, before: Iterable[str], after: Iterable[str]) -> str | None:
    """The name the server gave us as a guest, from ``users`` before and after.

    The server answers nothing to the announce that makes a guest, and adds ``_2``,
    ``_3``... to a name that is taken, so the new name in the list is ours. None
    when it cannot be told (several matching guests arrived at the same moment)."""
    base = requested.strip() if requested and requested.strip() else GUEST_NAME
    old = {name_key(name) for name in before}
    new = [name for name in after if name_key(name) not in old]
    if base in new or any(name_key(name) == name_key(base) for name in new):
        return next(name for name in new if name_key(name) == name_key(base))
    candidates = []
    for name in new:
        match = re.fullmatch(r"(.*)_(\d+)", name)
        if match and name_key(base).startswith(name_key(match.group(1))):
            candidates.append(name)
    if len(candidates) == 1:
        return candidates[0]
    if len(new) == 1 and not candidates:
        return new[0]  # the requested name was invalid and replaced
    return None


def user_names(reply: Mapping[str, Any]) -> list[str]:
    """The names in a ``users`` reply, ignoring anything that is not a string."""
    users = reply.get("users")
    return [user for user in users if isinstance(user, str)] if isinstance(users, list) else []
