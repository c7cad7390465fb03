"""Canned replies as text: shortcodes, variables, rendering and search ranking.
Pure functions, so every rule here is tested without a server."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

from confab_core.errors import InvalidArgument

# The closed list: a body may name these and nothing else. Adding one is a
# documented API change (docs/support.md), never a silent blank.
VARIABLES = (
    "requester.name",
    "requester.email",
    "agent.name",
    "ticket.id",
    "ticket.subject",
    "tenant.name",
)
# Lower case so "Refund" and "refund" cannot be two replies an agent has to
# tell apart; 2..32 characters, typed after a slash in a composer.
SHORTCODE = re.compile(r"[a-z0-9][a-z0-9_-]{1,31}")
MAX_BODY_CHARS = 4000
# Anything between double braces is meant as a variable: a typo such as
# {{agent.nmae}} is refused rather than sent as written.
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)

SHARED = "shared"
PERSONAL = "personal"


def check_shortcode(shortcode: str) -> str:
    if SHORTCODE.fullmatch(shortcode) is None:
        raise InvalidArgument(
            "shortcode: 2..32 of a-z, 0-9, '_' and '-', starting with a letter or digit",
            "invalid_shortcode",
        )
    return shortcode


def variables(body: str) -> list[str]:
    """The variables ``body`` names, in order, once each; unknown_variable for any
    name outside VARIABLES."""
    out: list[str] = []
    for match in _PLACEHOLDER.finditer(body):
        name = match.group(1).strip()
        if name not in VARIABLES:
            raise InvalidArgument(
                f"unknown variable {{{{{name}}}}}; known: {', '.join(VARIABLES)}",
                "unknown_variable",
            )
        if name not in out:
            out.append(name)
    return out


def check_body(body: str) -> str:
    if not body.strip():
        raise InvalidArgument("body must not be empty", "invalid_body")
    if len(body) > MAX_BODY_CHARS:
        raise InvalidArgument(f"body longer than {MAX_BODY_CHARS} characters", "invalid_body")
    variables(body)
    return body


def render(body: str, values: Mapping[str, str | None]) -> str:
    """``body`` with every variable replaced. A variable with no value (absent,
    None or blank) is variable_unavailable: a reply never goes out with a hole."""
    missing = [name for name in variables(body) if not (values.get(name) or "").strip()]
    if missing:
        raise InvalidArgument(
            f"no value for {', '.join('{{' + m + '}}' for m in missing)} in this conversation",
            "variable_unavailable",
        )
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1).strip()]), body)


class Match(IntEnum):
    """How a reply matched a query; lower ranks first."""

    ALL = 0
    SHORTCODE_PREFIX = 1
    SHORTCODE_SUBSTRING = 2
    BODY = 3


@dataclass(frozen=True, slots=True)
class Candidate:
    id: str
    scope: str
    shortcode: str
    # The body has every word of the query (decided by storage, on blind tokens).
    body_match: bool


def query_fragment(query: str) -> str:
    """What a query is compared with shortcodes as: trimmed, lower case, an
    optional leading slash (as typed in a composer) dropped."""
    return query.strip().lower().removeprefix("/")


def match(query: str, c: Candidate) -> Match | None:
    fragment = query_fragment(query)
    if not fragment:
        return Match.ALL
    if c.shortcode.startswith(fragment):
        return Match.SHORTCODE_PREFIX
    if fragment in c.shortcode:
        return Match.SHORTCODE_SUBSTRING
    if c.body_match:
        return Match.BODY
    return None


def rank(query: str, candidates: Sequence[Candidate]) -> list[Candidate]:
    """Matching candidates best first: by how they matched, then personal before
    shared (an agent's own reply is the more specific), then shortcode, then id."""
    scored = [(m, c) for c in candidates if (m := match(query, c)) is not None]
    scored.sort(key=lambda mc: (mc[0], mc[1].scope != PERSONAL, mc[1].shortcode, mc[1].id))
    return [c for _, c in scored]
