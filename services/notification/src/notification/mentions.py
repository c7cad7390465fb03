"""Finding @mentions in message text.

Deliberately simple: ``@`` at the start of a word, then the user id up to the
next whitespace, without trailing punctuation. User ids are opaque strings
from the host app's tokens, so no stricter grammar can be assumed.
"""

from __future__ import annotations

import re

_MENTION = re.compile(r"(?<!\S)@([^\s@]+)")
_TRAILING = ".,;:!?)]}>'\""


def mentioned_user_ids(text: str) -> set[str]:
    found: set[str] = set()
    for match in _MENTION.finditer(text):
        user_id = match.group(1).rstrip(_TRAILING)
        if user_id:
            found.add(user_id)
    return found


def mentions(text: str, user_id: str) -> bool:
    return user_id in mentioned_user_ids(text)
