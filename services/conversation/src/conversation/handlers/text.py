"""Message text: mentions and search terms. Pure functions."""

from __future__ import annotations

import re
import unicodedata

# @channel, @here and @all reach everyone in the conversation.
EVERYONE = frozenset({"channel", "here", "all"})
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9][A-Za-z0-9._-]{0,127})")
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 200
MIN_TERM = 2
MAX_TERM = 40


def parse_mentions(text: str) -> tuple[list[str], bool]:
    """User ids named with @id (in order, once each), and whether @channel/@here is there."""
    users: list[str] = []
    everyone = False
    for match in _MENTION.finditer(text):
        name = match.group(1).rstrip(".-")
        if name.lower() in EVERYONE:
            everyone = True
        elif name and name not in users:
            users.append(name)
    return users, everyone


def fold(word: str) -> str:
    """Lower case without accents, so 'Café' and 'cafe' match."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def terms(text: str) -> list[str]:
    """The distinct words a message is found by (a multikey index stores them)."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in _WORD.findall(text):
        word = fold(raw)
        if MIN_TERM <= len(word) <= MAX_TERM and word not in seen:
            seen.add(word)
            out.append(word)
            if len(out) >= MAX_TERMS:
                break
    return out


def message_terms(text: str, file_name: str | None) -> list[str]:
    """A message's search words: its text's and its file's name's, so a file
    message is found by a word of the name (blind tokens of both, in storage)."""
    return terms(f"{text} {file_name}" if file_name else text)
