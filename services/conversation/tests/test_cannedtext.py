"""Canned replies' pure rules: shortcodes, variables, rendering, ranking."""

from __future__ import annotations

import pytest

from confab_core.errors import InvalidArgument
from conversation.handlers import cannedtext
from conversation.handlers.cannedtext import PERSONAL, SHARED, Candidate, Match


def _code(exc: pytest.ExceptionInfo[InvalidArgument]) -> str:
    return exc.value.code


@pytest.mark.parametrize("shortcode", ["hi", "refund-policy", "a_1", "0day", "x" * 32])
def test_good_shortcodes(shortcode: str) -> None:
    assert cannedtext.check_shortcode(shortcode) == shortcode


@pytest.mark.parametrize(
    "shortcode", ["", "a", "Refund", "-lead", "_lead", "has space", "x" * 33, "émoji", "a/b"]
)
def test_bad_shortcodes(shortcode: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        cannedtext.check_shortcode(shortcode)
    assert _code(info) == "invalid_shortcode"


def test_variables_in_order_once_each() -> None:
    body = "Hi {{requester.name}}, {{ agent.name }} here about {{ticket.id}} ({{requester.name}})"
    assert cannedtext.variables(body) == ["requester.name", "agent.name", "ticket.id"]


@pytest.mark.parametrize(
    "body", ["Hi {{agent.nmae}}", "{{}}", "{{ requester }}", "{{tenant.name}} {{user.password}}"]
)
def test_unknown_variable(body: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        cannedtext.check_body(body)
    assert _code(info) == "unknown_variable"


@pytest.mark.parametrize("body", ["", "   ", "x" * (cannedtext.MAX_BODY_CHARS + 1)])
def test_bad_body(body: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        cannedtext.check_body(body)
    assert _code(info) == "invalid_body"


def test_single_braces_are_text() -> None:
    assert cannedtext.render("{x} and {{agent.name}}", {"agent.name": "Ann"}) == "{x} and Ann"


def test_render_fills_every_variable() -> None:
    values = {
        "requester.name": "Rita",
        "agent.name": "Ann",
        "ticket.id": "T-1",
        "tenant.name": "Acme",
    }
    body = "Hi {{requester.name}}, I'm {{ agent.name }} from {{tenant.name}} ({{ticket.id}})."
    assert cannedtext.render(body, values) == "Hi Rita, I'm Ann from Acme (T-1)."


def test_render_does_not_expand_values() -> None:
    # A requester named like a variable stays their name, not a second pass.
    out = cannedtext.render("Hi {{requester.name}}", {"requester.name": "{{agent.name}}"})
    assert out == "Hi {{agent.name}}"


@pytest.mark.parametrize("value", [None, "", "  "])
def test_render_refuses_a_blank(value: str | None) -> None:
    values = {"agent.name": "Ann", "ticket.id": value}
    with pytest.raises(InvalidArgument) as info:
        cannedtext.render("{{agent.name}} on {{ticket.id}}", values)
    assert _code(info) == "variable_unavailable"
    assert "ticket.id" in info.value.message


def test_render_refuses_unknown_before_unavailable() -> None:
    with pytest.raises(InvalidArgument) as info:
        cannedtext.render("{{ticket.id}} {{foo}}", {})
    assert _code(info) == "unknown_variable"


def _c(shortcode: str, scope: str = SHARED, body: bool = False, id_: str = "") -> Candidate:
    return Candidate(id_ or f"{scope}-{shortcode}", scope, shortcode, body)


def test_match_kinds() -> None:
    assert cannedtext.match("ref", _c("refund")) == Match.SHORTCODE_PREFIX
    assert cannedtext.match("/REF", _c("refund")) == Match.SHORTCODE_PREFIX
    assert cannedtext.match("fund", _c("refund")) == Match.SHORTCODE_SUBSTRING
    assert cannedtext.match("money", _c("refund", body=True)) == Match.BODY
    assert cannedtext.match("money", _c("refund")) is None
    assert cannedtext.match("  ", _c("refund")) == Match.ALL


def test_rank_prefix_then_substring_then_body() -> None:
    cands = [
        _c("greeting", body=True),  # body only
        _c("late-refund"),  # substring
        _c("refund-policy"),  # prefix
        _c("unrelated"),  # no match
        _c("refund", PERSONAL),  # prefix, personal
        _c("refund"),  # prefix, shared
        _c("zz-refund", PERSONAL, body=True),  # substring beats its body match
    ]
    got = [(c.scope, c.shortcode) for c in cannedtext.rank("refund", cands)]
    assert got == [
        (PERSONAL, "refund"),
        (SHARED, "refund"),
        (SHARED, "refund-policy"),
        (PERSONAL, "zz-refund"),
        (SHARED, "late-refund"),
        (SHARED, "greeting"),
    ]


def test_rank_without_query_is_personal_then_shortcode() -> None:
    cands = [_c("b"), _c("a"), _c("c", PERSONAL), _c("a", PERSONAL)]
    got = [(c.scope, c.shortcode) for c in cannedtext.rank("", cands)]
    assert got == [(PERSONAL, "a"), (PERSONAL, "c"), (SHARED, "a"), (SHARED, "b")]
