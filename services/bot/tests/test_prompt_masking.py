"""Prompts lose the PII the tenant asks to mask before the model sees them: the
real conversation service (its PolicyService) and the fake OpenAI server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

from bot.clients.policy import POLICY_CACHE_SECONDS, PolicyReader
from bot.handlers.replies import ReplyHandler
from bot.handlers.summaries import SummaryHandler
from bot.model import MaskingChat
from bot.prompting import Turn, masked_turns
from confab.conversation.v1 import conversation_pb2 as conv_pb
from confab.conversation.v1 import policy_pb2 as ppb
from confab.conversation.v1 import policy_pb2_grpc as ppb_grpc
from confab_core.clock import FakeClock
from confab_core.grpcx.client import channel
from confab_core.identity import ROLE_TENANT_ADMIN, Caller
from confab_core.servicetoken import CONVERSATION

from .conftest import BOT_AUTH, SYSTEM_PROMPT, Stack

AI = conv_pb.CONVERSATION_KIND_AI_ASSISTANT
QUESTION = "my card is 4242 4242 4242 4242 and I am bob@example.com, why was I charged?"
MASKED = "my card is [card ending 4242] and I am [email], why was I charged?"


class Parts:
    def __init__(self, stack: Stack, ch: grpc.aio.Channel) -> None:
        self.stack = stack
        self.policies = ppb_grpc.PolicyServiceStub(ch)
        self.clock = FakeClock()
        self.reader = PolicyReader(ch, self.clock)

    def replies(self) -> ReplyHandler:
        return self.stack.replies(model=MaskingChat(self.stack.model(), self.reader))

    async def set_policy(self, tenant_id: str, request: ppb.UpdatePolicyRequest) -> None:
        admin = Caller(tenant_id=tenant_id, user_id="root", roles=frozenset({ROLE_TENANT_ADMIN}))
        with self.stack.acting_as(admin):
            await self.policies.UpdatePolicy(request)


@pytest_asyncio.fixture
async def parts(stack: Stack, conversation_addr: str) -> AsyncIterator[Parts]:
    ch = channel(conversation_addr, BOT_AUTH, CONVERSATION)
    try:
        yield Parts(stack, ch)
    finally:
        await ch.close()


@pytest.mark.asyncio
async def test_the_model_receives_masked_prompts_when_the_tenant_asks(parts: Parts) -> None:
    stack = parts.stack
    alice = stack.user("alice")
    await parts.set_policy(stack.tenant_id, ppb.UpdatePolicyRequest(mask_bot_prompts=True))
    conv = await stack.create(alice, AI)
    question = await stack.send(alice, conv.id, QUESTION)
    # Flag mode (the default) stores it as written: only the prompt is masked.
    assert question.text == QUESTION

    await parts.replies().handle(stack.event_for(question, AI))

    assert stack.fake.requests[-1]["messages"] == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": MASKED},
    ]

    # Summaries go through the same model.
    summaries = SummaryHandler(
        stack.client, MaskingChat(stack.model(), parts.reader), max_messages=100
    )
    with stack.acting_as(alice):
        await summaries.summarize(alice, conv.id)
    transcript = stack.fake.requests[-1]["messages"][-1]["content"]
    assert "4242 4242" not in transcript and "bob@example.com" not in transcript
    assert "[card ending 4242]" in transcript


@pytest.mark.asyncio
async def test_prompts_are_sent_as_written_otherwise_and_per_tenant(parts: Parts) -> None:
    stack = parts.stack
    other = "t-other"
    await parts.set_policy(other, ppb.UpdatePolicyRequest(mask_bot_prompts=True))
    alice = stack.user("alice")
    conv = await stack.create(alice, AI)
    question = await stack.send(alice, conv.id, QUESTION)
    handler = parts.replies()

    await handler.handle(stack.event_for(question, AI))
    # Another tenant's masking never applies here.
    assert stack.fake.requests[-1]["messages"][-1]["content"] == QUESTION

    # Only cards, from now on: within the cache time the old policy holds.
    await parts.set_policy(
        stack.tenant_id,
        ppb.UpdatePolicyRequest(mask_bot_prompts=True, pii_kinds=ppb.PiiKindList(kinds=["card"])),
    )
    parts.clock.advance(POLICY_CACHE_SECONDS)
    second = await stack.send(alice, conv.id, "again: 4242424242424242 / bob@example.com")
    await handler.handle(stack.event_for(second, AI))
    assert (
        stack.fake.requests[-1]["messages"][-1]["content"]
        == "again: [card ending 4242] / bob@example.com"
    )


def test_masked_turns_keep_the_system_prompt() -> None:
    turns = [Turn("system", "mail ops@example.com"), Turn("assistant", "call +1 212 555 0199")]
    assert masked_turns(turns, ()) == [
        Turn("system", "mail ops@example.com"),
        Turn("assistant", "call [phone]"),
    ]
