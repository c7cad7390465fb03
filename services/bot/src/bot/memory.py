"""The prompt under the agent's token budget: pure planning, no I/O.

A prompt is the system prompt, the agent's rolling summary of the
conversation's older messages (BotDataService memory), then the recent messages
verbatim. Recent messages are kept newest first until the budget is spent; the
older ones that no longer fit are the "unsummarized overflow", and once it
grows past a threshold the handler asks the model for a new rolling summary
covering it (so the summary is refreshed in steps, not on every message).

Tokens are counted offline: the o200k vocabulary ships inside the bpe-openai
wheel, so nothing is downloaded at run time (tiktoken fetches its encodings on
first use, which a bot without egress cannot do).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import bpe_openai  # type: ignore[import-untyped]

from bot.prompting import Role, Turn

# What OpenAI's chat format adds around each message, and once for the reply.
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REPLY = 3
MEMORY_HEADING = "Summary of the earlier conversation:\n"
MEMORY_PROMPT = (
    "You keep a running summary of a support or assistant chat for the bot that "
    "answers it. Merge the previous summary and the new messages into one short, "
    "factual summary: the user's questions, what was answered, facts the user gave, "
    "open issues. No greetings, no commentary."
)


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...


@functools.cache
def _o200k() -> Any:
    # Loaded once per process: the vocabulary takes a moment to build.
    return bpe_openai.get_encoding("o200k_base")


class BpeCounter:
    """OpenAI's o200k_base encoding, from the vocabulary shipped in the wheel."""

    def __init__(self) -> None:
        self._encoding = _o200k()

    def count(self, text: str) -> int:
        return len(self._encoding.encode(text))


@dataclass(frozen=True)
class Line:
    """One message as the prompt sees it."""

    seq: int
    role: Role
    text: str


@dataclass(frozen=True)
class PromptPlan:
    turns: list[Turn]
    # Prompt tokens as counted here (the model's own count is what is billed).
    tokens: int
    # Older messages past the summary that did not fit, oldest first.
    overflow: list[Line]
    overflow_tokens: int


def turn_tokens(counter: TokenCounter, text: str) -> int:
    return counter.count(text) + TOKENS_PER_MESSAGE


def plan_prompt(
    counter: TokenCounter,
    *,
    system_prompt: str,
    memory: str,
    lines: Sequence[Line],
    budget: int,
) -> PromptPlan:
    """``lines``: the messages after the memory's through_seq, oldest first, the
    one being answered last. The newest line is always kept, cut if it alone
    overflows the budget, so a reply is always to the question asked."""
    head: list[Turn] = []
    if system_prompt:
        head.append(Turn("system", system_prompt))
    if memory:
        head.append(Turn("system", MEMORY_HEADING + memory))
    used = TOKENS_PER_REPLY + sum(turn_tokens(counter, t.content) for t in head)
    kept: list[Turn] = []
    overflow: list[Line] = []
    overflow_tokens = 0
    full = False
    for i, line in enumerate(reversed(lines)):
        cost = turn_tokens(counter, line.text)
        if i == 0 and used + cost > budget:
            text = truncate(counter, line.text, max(budget - used - TOKENS_PER_MESSAGE, 16))
            kept.append(Turn(line.role, text))
            used += turn_tokens(counter, text)
            full = True
            continue
        if full or used + cost > budget:
            full = True
            overflow.append(line)
            overflow_tokens += cost
            continue
        kept.append(Turn(line.role, line.text))
        used += cost
    overflow.reverse()
    return PromptPlan(head + kept[::-1], used, overflow, overflow_tokens)


def truncate(counter: TokenCounter, text: str, max_tokens: int) -> str:
    """The longest prefix of ``text`` within ``max_tokens`` (by halving, so a
    long message costs a few counts, not one per character)."""
    if counter.count(text) <= max_tokens:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if counter.count(text[:mid]) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "…"


def needs_refresh(plan: PromptPlan, threshold_tokens: int) -> bool:
    return bool(plan.overflow) and plan.overflow_tokens >= threshold_tokens


def memory_turns(previous: str, overflow: Sequence[Line]) -> list[Turn]:
    body = "\n".join(f"{'Bot' if ln.role == 'assistant' else 'User'}: {ln.text}" for ln in overflow)
    if previous:
        body = f"Previous summary:\n{previous}\n\nNew messages:\n{body}"
    return [Turn("system", MEMORY_PROMPT), Turn("user", body)]
