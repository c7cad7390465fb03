"""Prompt planning under a token budget, and offline token counting."""

from __future__ import annotations

import socket

import pytest

from bot.memory import (
    MEMORY_HEADING,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_REPLY,
    BpeCounter,
    Line,
    memory_turns,
    needs_refresh,
    plan_prompt,
    truncate,
)
from bot.prompting import Turn


class Words:
    """One token per word: easy to reason about in the planning tests."""

    def count(self, text: str) -> int:
        return len(text.split())


def lines(*texts: str) -> list[Line]:
    return [
        Line(seq, "user" if seq % 2 else "assistant", text)
        for seq, text in enumerate(texts, start=1)
    ]


def test_everything_fits_a_big_budget() -> None:
    plan = plan_prompt(
        Words(), system_prompt="be nice", memory="", lines=lines("a b", "c"), budget=1000
    )
    assert plan.turns == [Turn("system", "be nice"), Turn("user", "a b"), Turn("assistant", "c")]
    assert plan.overflow == []
    assert plan.tokens == TOKENS_PER_REPLY + 3 * TOKENS_PER_MESSAGE + 2 + 2 + 1


def test_newest_messages_are_kept_first_and_older_ones_overflow() -> None:
    msgs = lines("one two three", "four five", "six", "seven eight")
    # reply 3 + system (1 + 4) + newest two (2+4, 1+4) = 19; the next would be 25.
    plan = plan_prompt(Words(), system_prompt="sys", memory="", lines=msgs, budget=20)
    assert [t.content for t in plan.turns] == ["sys", "six", "seven eight"]
    assert [ln.seq for ln in plan.overflow] == [1, 2]
    assert plan.overflow_tokens == (3 + 4) + (2 + 4)
    assert plan.tokens <= 20
    assert needs_refresh(plan, 13)
    assert not needs_refresh(plan, 14)


def test_nothing_is_kept_past_the_first_message_that_does_not_fit() -> None:
    # A short old message must not jump the queue over a long newer one.
    msgs = lines("old", "a b c d e f g h i j", "new")
    plan = plan_prompt(Words(), system_prompt="", memory="", lines=msgs, budget=12)
    assert [t.content for t in plan.turns] == ["new"]
    assert [ln.seq for ln in plan.overflow] == [1, 2]


def test_the_memory_goes_after_the_system_prompt() -> None:
    plan = plan_prompt(
        Words(), system_prompt="sys", memory="they like tea", lines=lines("hi"), budget=100
    )
    assert plan.turns[:2] == [
        Turn("system", "sys"),
        Turn("system", MEMORY_HEADING + "they like tea"),
    ]


def test_the_question_is_always_kept_cut_to_the_budget() -> None:
    long = " ".join(f"w{i}" for i in range(500))
    plan = plan_prompt(Words(), system_prompt="", memory="", lines=lines(long), budget=64)
    assert len(plan.turns) == 1
    assert plan.turns[0].content.endswith("…")
    assert Words().count(plan.turns[0].content) <= 64


def test_truncate_keeps_the_longest_prefix() -> None:
    assert truncate(Words(), "a b c", 5) == "a b c"
    assert truncate(Words(), "a b c d", 2) == "a b…"


def test_memory_turns_merge_the_previous_summary() -> None:
    turns = memory_turns("they asked about refunds", lines("where is it", "on its way"))
    assert turns[0].role == "system"
    assert "Previous summary:\nthey asked about refunds" in turns[1].content
    assert "User: where is it\nBot: on its way" in turns[1].content


def test_bpe_counts_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the tokenizer tried to reach the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    counter = BpeCounter()
    assert counter.count("") == 0
    assert counter.count("hello world") == 2
    assert 5 < counter.count("Où est ma commande ? Elle devait arriver à 18 h.") < 30
