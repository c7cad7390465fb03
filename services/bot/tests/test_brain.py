"""The reply pipeline against the real conversation service (settings, tickets,
bot data), Kafka, MongoDB and the fake OpenAI-compatible server."""

from __future__ import annotations

import pytest
from pymongo import AsyncMongoClient

from bot.clients.settings import SettingsClient, load_as_bot
from bot.memory import MEMORY_HEADING
from bot.prompting import FORBIDDEN_REPLY, QUOTA_REPLY, UNAVAILABLE_REPLY
from confab.conversation.v1 import botdata_pb2 as bdpb
from confab.conversation.v1 import botdata_pb2_grpc as bd_grpc
from confab.conversation.v1 import conversation_pb2 as conv_pb
from confab.conversation.v1 import settings_pb2 as spb
from confab.conversation.v1 import support_pb2 as supb
from confab.conversation.v1 import support_pb2_grpc as sup_grpc
from confab_core.clock import SystemClock
from confab_core.identity import BOT_USER_ID, ROLE_SERVICE, ROLE_TENANT_ADMIN, Caller
from confab_core.tenant_settings import TenantSettingsCache

from .conftest import Stack

AI = conv_pb.CONVERSATION_KIND_AI_ASSISTANT
SUPPORT = conv_pb.CONVERSATION_KIND_SUPPORT

TOPICS = spb.Topics(
    allowed=[spb.TopicRule(name="orders", keywords=["order", "delivery", "refund"])],
    forbidden=[spb.TopicRule(name="medical", keywords=["dosage", "medication"])],
)


def settings(**agent_fields: object) -> spb.TenantSettings:
    return spb.TenantSettings(
        topics=TOPICS,
        agents=[
            spb.BotAgent(
                id="helper",
                display_name="Helper",
                role=spb.AGENT_ROLE_ASSISTANT,
                system_prompt="You are Helper.",
                model="helper-model",
                temperature=0.4,
                enabled=True,
            ),
            spb.BotAgent(
                id="desk",
                display_name="Desk Bot",
                role=spb.AGENT_ROLE_SUPPORT,
                system_prompt="You are the support desk's first line.",
                enabled=True,
                **agent_fields,  # type: ignore[arg-type]
            ),
        ],
    )


def admin(stack: Stack, tenant_id: str = "") -> Caller:
    return Caller(
        tenant_id=tenant_id or stack.tenant_id,
        user_id="root",
        roles=frozenset({ROLE_TENANT_ADMIN}),
        display_name="Root",
    )


_ROLES = {
    spb.AGENT_ROLE_ASSISTANT: "assistant",
    spb.AGENT_ROLE_SUPPORT: "support",
    spb.AGENT_ROLE_PICKABLE: "pickable",
}


async def configure(stack: Stack, document: spb.TenantSettings, tenant_id: str = "") -> None:
    """The tenant's settings, where both services read them: the bot through its
    settings source, the conversation service from the tenant_settings document
    (the fields it reads: agents' id, name, role, enabled; the AI quota)."""
    tenant = tenant_id or stack.tenant_id
    stack.tenant_settings[tenant] = document
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(stack.servers.mongo_url)
    try:
        await client[stack.database]["tenant_settings"].update_one(
            {"_id": tenant},
            {
                "$set": {
                    "tenant_id": tenant,
                    "agents": [
                        {
                            "id": a.id,
                            "display_name": a.display_name,
                            "role": _ROLES.get(a.role, ""),
                            "enabled": a.enabled,
                        }
                        for a in document.agents
                    ],
                    "ai_quota": {"monthly_tokens": document.ai_quota.monthly_tokens},
                }
            },
            upsert=True,
        )
    finally:
        await client.close()


async def open_ticket(stack: Stack, caller: Caller, text: str) -> supb.OpenTicketResponse:
    stub = sup_grpc.SupportServiceStub(stack.channel)
    with stack.acting_as(caller):
        resp: supb.OpenTicketResponse = await stub.OpenTicket(
            supb.OpenTicketRequest(subject="Help", text=text, client_msg_id=f"open-{text}")
        )
    return resp


async def ticket_of(stack: Stack, conversation_id: str) -> supb.Ticket:
    stub = sup_grpc.SupportServiceStub(stack.channel)
    with stack.acting_as(admin(stack)):
        resp = await stub.GetConversationTicket(
            supb.GetConversationTicketRequest(conversation_id=conversation_id)
        )
    return resp.ticket


async def usage(stack: Stack, tenant_id: str = "") -> bdpb.TenantUsage:
    stub = bd_grpc.BotDataServiceStub(stack.channel)
    bot = Caller(
        tenant_id=tenant_id or stack.tenant_id, user_id=BOT_USER_ID, roles=frozenset({ROLE_SERVICE})
    )
    with stack.acting_as(bot):
        return (await stub.GetUsage(bdpb.GetUsageRequest())).usage


async def first_message(stack: Stack, caller: Caller, conversation_id: str) -> conv_pb.Message:
    messages = await stack.messages(caller, conversation_id)
    return next(m for m in messages if m.sender_id == caller.user_id)


@pytest.mark.asyncio
async def test_the_tenant_assistant_agent_answers_with_its_own_setup(stack: Stack) -> None:
    await configure(stack, settings())
    alice = stack.user("alice")
    conv = await stack.create(alice, AI)
    question = await stack.send(alice, conv.id, "Where is my order?")

    await stack.replies().handle(stack.event_for(question, AI))

    [reply] = await stack.bot_messages(alice, conv.id)
    assert (reply.sender_id, reply.sender_name) == ("confab-bot:helper", "Helper")
    assert reply.text == "echo: Where is my order?"
    sent = stack.fake.requests[-1]
    assert sent["model"] == "helper-model"
    assert sent["temperature"] == 0.4
    assert sent["messages"][0] == {"role": "system", "content": "You are Helper."}
    # Metered: the month's usage counts the reply, per agent.
    month = await usage(stack)
    assert month.tokens_in > 0 and month.tokens_out > 0
    assert [a.agent_id for a in month.agents] == ["helper"]


@pytest.mark.asyncio
async def test_a_forbidden_question_never_reaches_the_model(stack: Stack) -> None:
    await configure(stack, settings())
    alice = stack.user("alice")
    conv = await stack.create(alice, AI)
    question = await stack.send(alice, conv.id, "What DOSAGE of ibuprofen is safe?")
    handler = stack.replies()

    await handler.handle(stack.event_for(question, AI))
    await handler.handle(stack.event_for(question, AI))

    assert [m.text for m in await stack.bot_messages(alice, conv.id)] == [FORBIDDEN_REPLY]
    assert stack.fake.requests == []


@pytest.mark.asyncio
async def test_support_bot_answers_then_hands_off_and_stays_silent(stack: Stack) -> None:
    await configure(stack, settings())
    alice = stack.user("alice")
    opened = await open_ticket(stack, alice, "My delivery is late")
    conv = opened.conversation
    assert opened.ticket.status == supb.TICKET_STATUS_BOT
    handler = stack.replies()
    first = await first_message(stack, alice, conv.id)

    await handler.handle(stack.event_for(first, SUPPORT))
    replies = await stack.bot_messages(alice, conv.id)
    assert [(m.sender_id, m.text) for m in replies] == [
        ("confab-bot:desk", "echo: My delivery is late")
    ]
    asked = len(stack.fake.requests)

    forbidden = await stack.send(alice, conv.id, "Which medication helps with the stress?")
    # Sent while the handoff is under way: its event is handled after it.
    during = await stack.send(alice, conv.id, "Also, where is my refund?")
    await handler.handle(stack.event_for(forbidden, SUPPORT))

    ticket = await ticket_of(stack, conv.id)
    assert ticket.status == supb.TICKET_STATUS_QUEUED
    assert ticket.handoff_reason == supb.HANDOFF_REASON_FORBIDDEN_TOPIC
    # Extractive (the forbidden question is not sent to the model even to
    # summarize it), the newest line kept.
    assert "medication" in ticket.handoff_summary
    assert len(ticket.handoff_summary) <= 500
    assert len(stack.fake.requests) == asked

    # During and after the handoff, and with every event redelivered: silence.
    later = await stack.send(alice, conv.id, "Hello? Where is my order?")
    for message in (during, first, forbidden, later):
        await handler.handle(stack.event_for(message, SUPPORT))
        await stack.replies().handle(stack.event_for(message, SUPPORT))
    assert len(await stack.bot_messages(alice, conv.id)) == 1
    assert len(stack.fake.requests) == asked


@pytest.mark.asyncio
async def test_asking_for_a_person_hands_off_with_a_model_summary(stack: Stack) -> None:
    await configure(stack, settings())
    alice = stack.user("alice")
    opened = await open_ticket(stack, alice, "I want to talk to a human please")
    stack.fake.set_reply(lambda body: "Customer wants a person.")
    first = await first_message(stack, alice, opened.conversation.id)

    await stack.replies().handle(stack.event_for(first, SUPPORT))

    ticket = await ticket_of(stack, opened.conversation.id)
    assert ticket.status == supb.TICKET_STATUS_QUEUED
    assert ticket.handoff_reason == supb.HANDOFF_REASON_USER_ASKED
    assert ticket.handoff_summary == "Customer wants a person."
    assert await stack.bot_messages(alice, opened.conversation.id) == []


@pytest.mark.asyncio
async def test_off_topic_support_questions_hand_off(stack: Stack) -> None:
    await configure(stack, settings())
    alice = stack.user("alice")
    opened = await open_ticket(stack, alice, "What's the weather in Paris?")
    first = await first_message(stack, alice, opened.conversation.id)

    await stack.replies().handle(stack.event_for(first, SUPPORT))

    ticket = await ticket_of(stack, opened.conversation.id)
    assert ticket.handoff_reason == supb.HANDOFF_REASON_OFF_TOPIC


@pytest.mark.asyncio
async def test_turn_limit_hands_off_after_the_nth_answer(stack: Stack) -> None:
    await configure(stack, settings(handoff_after_turns=2))
    alice = stack.user("alice")
    opened = await open_ticket(stack, alice, "Where is my order?")
    conv = opened.conversation
    handler = stack.replies()
    first = await first_message(stack, alice, conv.id)
    await handler.handle(stack.event_for(first, SUPPORT))
    assert (await ticket_of(stack, conv.id)).status == supb.TICKET_STATUS_BOT

    second = await stack.send(alice, conv.id, "And the refund?")
    await handler.handle(stack.event_for(second, SUPPORT))

    ticket = await ticket_of(stack, conv.id)
    assert ticket.status == supb.TICKET_STATUS_QUEUED
    assert ticket.handoff_reason == supb.HANDOFF_REASON_TURN_LIMIT
    assert len(await stack.bot_messages(alice, conv.id)) == 2


@pytest.mark.asyncio
async def test_the_model_saying_it_cannot_help_hands_off(stack: Stack) -> None:
    await configure(stack, settings())
    alice = stack.user("alice")
    opened = await open_ticket(stack, alice, "Can you refund my order from another shop?")
    stack.fake.set_reply(lambda body: "Sorry, I can't help with orders from other shops.")
    first = await first_message(stack, alice, opened.conversation.id)

    await stack.replies().handle(stack.event_for(first, SUPPORT))

    ticket = await ticket_of(stack, opened.conversation.id)
    assert ticket.handoff_reason == supb.HANDOFF_REASON_BOT_CANNOT_HELP


@pytest.mark.asyncio
async def test_a_model_that_stays_down(stack: Stack) -> None:
    await configure(stack, settings())
    alice = stack.user("alice")
    # Assistant: one clear message, after the retries.
    conv = await stack.create(alice, AI)
    question = await stack.send(alice, conv.id, "Where is my order?")
    stack.fake.fail_next(3, status=503)
    await stack.replies(max_retries=2).handle(stack.event_for(question, AI))
    assert [m.text for m in await stack.bot_messages(alice, conv.id)] == [UNAVAILABLE_REPLY]
    assert len(stack.fake.requests) == 3

    # Support: the ticket goes to humans.
    opened = await open_ticket(stack, alice, "My delivery is late")
    first = await first_message(stack, alice, opened.conversation.id)
    stack.fake.fail_next(3, status=429)
    await stack.replies(max_retries=2).handle(stack.event_for(first, SUPPORT))
    ticket = await ticket_of(stack, opened.conversation.id)
    assert ticket.handoff_reason == supb.HANDOFF_REASON_MODEL_UNAVAILABLE
    assert await stack.bot_messages(alice, opened.conversation.id) == []


@pytest.mark.asyncio
async def test_a_client_error_is_not_retried(stack: Stack) -> None:
    alice = stack.user("alice")
    conv = await stack.create(alice, AI)
    question = await stack.send(alice, conv.id, "hi")
    stack.fake.fail_next(1, status=400)

    await stack.replies(max_retries=2).handle(stack.event_for(question, AI))

    assert [m.text for m in await stack.bot_messages(alice, conv.id)] == [UNAVAILABLE_REPLY]
    assert len(stack.fake.requests) == 1


@pytest.mark.asyncio
async def test_older_messages_roll_into_memory_under_a_small_budget(stack: Stack) -> None:
    alice = stack.user("alice")
    conv = await stack.create(alice, AI)
    handler = stack.replies(token_budget=256, memory_refresh_tokens=100)
    stack.fake.set_reply(
        lambda body: (
            "SUMMARY: alice talked about numbers"
            if "running summary" in body["messages"][0]["content"]
            else "ok"
        )
    )
    for i in range(8):
        text = f"Message {i}: " + " ".join(["seven"] * 30)
        message = await stack.send(alice, conv.id, text)
        await handler.handle(stack.event_for(message, AI))

    memory_calls = [
        r for r in stack.fake.requests if "running summary" in r["messages"][0]["content"]
    ]
    assert memory_calls
    last = stack.fake.requests[-1]["messages"]
    assert last[0] == {"role": "system", "content": stack.system_prompt}
    assert last[1]["content"].startswith(MEMORY_HEADING + "SUMMARY:")
    assert last[-1]["content"].startswith("Message 7:")
    month = await usage(stack)
    assert month.tokens_in > 0


@pytest.mark.asyncio
async def test_summaries_are_cached_by_last_seq(stack: Stack) -> None:
    from confab.bot.v1 import bot_pb2 as pb

    alice = stack.user("alice")
    conv = await stack.create(alice, conv_pb.CONVERSATION_KIND_GROUP, ["bob"], "Launch")
    await stack.send(alice, conv.id, "Ship on Friday?")
    bot = await stack.serve_bot()
    request = pb.SummarizeConversationRequest(conversation_id=conv.id)
    with stack.acting_as(alice):
        first = await bot.SummarizeConversation(request)
        again = await bot.SummarizeConversation(request)
    assert first.summary == again.summary
    assert len(stack.fake.requests) == 1

    await stack.send(alice, conv.id, "Or Monday?")
    with stack.acting_as(alice):
        await bot.SummarizeConversation(request)
    assert len(stack.fake.requests) == 2


@pytest.mark.asyncio
async def test_a_summary_never_shows_the_model_a_forbidden_question(stack: Stack) -> None:
    from confab.bot.v1 import bot_pb2 as pb

    await configure(stack, settings())
    alice = stack.user("alice")
    conv = await stack.create(alice, conv_pb.CONVERSATION_KIND_GROUP, ["bob"], "Orders")
    await stack.send(alice, conv.id, "Where is my order?")
    await stack.send(alice, conv.id, "And what medication dosage is fine?")
    bot = await stack.serve_bot()
    with stack.acting_as(alice):
        await bot.SummarizeConversation(pb.SummarizeConversationRequest(conversation_id=conv.id))

    [asked] = stack.fake.requests
    assert "Where is my order?" in repr(asked)
    assert "dosage" not in repr(asked)


@pytest.mark.asyncio
async def test_another_tenant_keeps_its_own_agents(stack: Stack) -> None:
    await configure(stack, settings())
    bob = stack.user("bob", tenant_id="t2")
    conv = await stack.create(bob, AI)
    question = await stack.send(bob, conv.id, "What DOSAGE is fine?")

    await stack.replies().handle(stack.event_for(question, AI, "t2"))

    [reply] = await stack.bot_messages(bob, conv.id)
    # t1's agents and forbidden topics do not apply in t2.
    assert reply.sender_id == BOT_USER_ID
    assert reply.text == "echo: What DOSAGE is fine?"


@pytest.mark.asyncio
async def test_over_quota_one_message_per_conversation_and_support_hands_off(
    stack: Stack,
) -> None:
    document = settings()
    document.ai_quota.monthly_tokens = 1
    await configure(stack, document)
    alice = stack.user("alice")
    conv = await stack.create(alice, AI)
    handler = stack.replies()
    first = await stack.send(alice, conv.id, "Where is my order?")
    # The first answer spends the quota.
    await handler.handle(stack.event_for(first, AI))
    asked = len(stack.fake.requests)

    for text in ("And the refund?", "Hello?"):
        message = await stack.send(alice, conv.id, text)
        await handler.handle(stack.event_for(message, AI))

    texts = [m.text for m in await stack.bot_messages(alice, conv.id)]
    assert texts == ["echo: Where is my order?", QUOTA_REPLY]
    assert len(stack.fake.requests) == asked

    opened = await open_ticket(stack, alice, "My delivery is late")
    first = await first_message(stack, alice, opened.conversation.id)
    await handler.handle(stack.event_for(first, SUPPORT))
    ticket = await ticket_of(stack, opened.conversation.id)
    assert ticket.handoff_reason == supb.HANDOFF_REASON_QUOTA_EXCEEDED
    assert len(stack.fake.requests) == asked


@pytest.mark.asyncio
async def test_the_bot_reads_settings_as_itself_through_the_cache(stack: Stack) -> None:
    cache = TenantSettingsCache(
        lambda tenant_id: load_as_bot(SettingsClient(stack.channel), tenant_id), SystemClock()
    )
    # Whoever is calling (a member here), the read is the bot's; a tenant that
    # never saved settings has no agents.
    with stack.acting_as(stack.user("alice")):
        found = await cache.get(stack.tenant_id)
    assert list(found.agents) == []
