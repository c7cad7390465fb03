"""The bot against a real conversation service, Kafka, MongoDB and an OpenAI-compatible server."""

from __future__ import annotations

import grpc
import pytest

from bot.prompting import (
    NOT_CONFIGURED_REPLY,
    NOT_CONFIGURED_SUMMARY,
    NOTHING_TO_SUMMARIZE,
    SUMMARY_PROMPT,
    SUMMARY_UNAVAILABLE,
    UNAVAILABLE_REPLY,
)
from confab.bot.v1 import bot_pb2 as pb
from confab.conversation.v1 import conversation_pb2 as conv_pb
from confab_core.identity import BOT_USER_ID

AI = conv_pb.CONVERSATION_KIND_AI_ASSISTANT


@pytest.mark.asyncio
async def test_bot_answers_through_kafka_once(stack) -> None:
    alice = stack.user("alice")
    conv = await stack.create(alice, AI)
    await stack.start_consumer(stack.replies())

    question = await stack.send(alice, conv.id, "What is Confab?")

    replies = await stack.eventually(
        lambda: stack.bot_messages(alice, conv.id), "the bot's reply", within=60
    )
    assert [(m.text, m.sender_id) for m in replies] == [("echo: What is Confab?", BOT_USER_ID)]
    assert replies[0].client_msg_id == f"bot-reply:{question.id}"
    assert replies[0].sender_name == "Confab Assistant"
    assert replies[0].seq == question.seq + 1
    assert len(stack.fake.requests) == 1
    sent = stack.fake.requests[0]
    assert sent["model"] == "test-model"
    assert sent["messages"] == [
        {"role": "system", "content": stack.system_prompt},
        {"role": "user", "content": "What is Confab?"},
    ]

    # A redelivery (crash before the offset commit) neither posts nor pays twice.
    record = await stack.handled_message(question.id)
    handler = stack.replies()
    await handler.handle_record(record)
    await handler.handle_record(record)
    assert len(await stack.bot_messages(alice, conv.id)) == 1
    assert len(stack.fake.requests) == 1


@pytest.mark.asyncio
async def test_history_is_sent_in_chat_roles(stack) -> None:
    alice = stack.user("alice")
    conv = await stack.create(alice, AI)
    handler = stack.replies()
    first = await stack.send(alice, conv.id, "Remember the number 7.")
    await handler.handle(stack.event_for(first, AI))
    stack.fake.set_reply(lambda body: f"You said {len(body['messages']) - 1} things")
    second = await stack.send(alice, conv.id, "Which number?")

    await handler.handle(stack.event_for(second, AI))

    assert stack.fake.requests[-1]["messages"] == [
        {"role": "system", "content": stack.system_prompt},
        {"role": "user", "content": "Remember the number 7."},
        {"role": "assistant", "content": "echo: Remember the number 7."},
        {"role": "user", "content": "Which number?"},
    ]
    texts = [m.text for m in await stack.messages(alice, conv.id)]
    assert texts == [
        "Remember the number 7.",
        "echo: Remember the number 7.",
        "Which number?",
        "You said 3 things",
    ]


@pytest.mark.asyncio
async def test_redelivered_old_event_keeps_the_history_it_was_about(stack) -> None:
    alice = stack.user("alice")
    conv = await stack.create(alice, AI)
    first = await stack.send(alice, conv.id, "first")
    await stack.send(alice, conv.id, "second")
    handler = stack.replies()

    await handler.handle(stack.event_for(first, AI))

    # Only messages up to the one answered; later ones are their own events.
    assert stack.fake.requests[-1]["messages"][1:] == [{"role": "user", "content": "first"}]


@pytest.mark.asyncio
async def test_without_a_model_the_bot_says_it_is_not_configured(stack) -> None:
    alice = stack.user("alice")
    conv = await stack.create(alice, AI)
    await stack.start_consumer(stack.replies(configured=False))

    await stack.send(alice, conv.id, "Hello?")

    replies = await stack.eventually(
        lambda: stack.bot_messages(alice, conv.id), "the not-configured reply", within=60
    )
    assert [m.text for m in replies] == [NOT_CONFIGURED_REPLY]
    assert "BOT_OPENAI_BASE_URL" in replies[0].text
    assert "BOT_OPENAI_API_KEY" in replies[0].text
    assert stack.fake.requests == []


@pytest.mark.asyncio
async def test_failing_model_yields_a_could_not_answer_reply(stack) -> None:
    alice = stack.user("alice")
    conv = await stack.create(alice, AI)
    # More failures than the SDK's retries (1 try + 2 retries).
    stack.fake.fail_next(3, status=503)
    question = await stack.send(alice, conv.id, "Are you there?")

    await stack.replies(max_retries=2).handle(stack.event_for(question, AI))

    replies = await stack.bot_messages(alice, conv.id)
    assert [m.text for m in replies] == [UNAVAILABLE_REPLY]
    assert "could not answer" in replies[0].text
    assert len(stack.fake.requests) == 3


@pytest.mark.asyncio
async def test_sdk_retries_hide_a_transient_model_error(stack) -> None:
    alice = stack.user("alice")
    conv = await stack.create(alice, AI)
    stack.fake.fail_next(1, status=500)
    question = await stack.send(alice, conv.id, "ping")

    await stack.replies(max_retries=2).handle(stack.event_for(question, AI))

    assert [m.text for m in await stack.bot_messages(alice, conv.id)] == ["echo: ping"]


@pytest.mark.asyncio
async def test_no_reply_outside_assistant_conversations(stack) -> None:
    alice = stack.user("alice")
    conv = await stack.create(alice, conv_pb.CONVERSATION_KIND_GROUP, ["bob"], "Team")
    message = await stack.send(alice, conv.id, "hello team")

    await stack.replies().handle(stack.event_for(message, conv_pb.CONVERSATION_KIND_GROUP))

    assert await stack.bot_messages(alice, conv.id) == []
    assert stack.fake.requests == []


@pytest.mark.asyncio
async def test_event_for_a_missing_conversation_is_skipped(stack) -> None:
    message = conv_pb.Message(id="m-1", conversation_id="gone", seq=1, sender_id="alice", text="hi")
    # Returns instead of raising: raising would make the consumer retry it forever.
    await stack.replies().handle(stack.event_for(message, AI))
    assert stack.fake.requests == []


@pytest.mark.asyncio
async def test_summarize_reads_as_the_caller(stack) -> None:
    alice, bob, mallory = stack.user("alice"), stack.user("bob"), stack.user("mallory")
    conv = await stack.create(alice, conv_pb.CONVERSATION_KIND_GROUP, ["bob"], "Launch")
    await stack.send(alice, conv.id, "Ship on Friday?")
    await stack.send(bob, conv.id, "Yes, after QA.")
    stack.fake.set_reply(lambda body: "They agreed to ship on Friday after QA.")
    bot = await stack.serve_bot()

    with stack.acting_as(bob):
        resp = await bot.SummarizeConversation(
            pb.SummarizeConversationRequest(conversation_id=conv.id)
        )
    assert resp.model_available
    assert resp.summary == "They agreed to ship on Friday after QA."
    assert stack.fake.requests[-1]["messages"] == [
        {"role": "system", "content": SUMMARY_PROMPT},
        {
            "role": "user",
            "content": "Conversation: Launch\n\nAlice: Ship on Friday?\nBob: Yes, after QA.",
        },
    ]

    # Not a member: the conversation does not exist as far as mallory can tell.
    with stack.acting_as(mallory), pytest.raises(grpc.aio.AioRpcError) as info:
        await bot.SummarizeConversation(pb.SummarizeConversationRequest(conversation_id=conv.id))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    # Nor can the same user id in another tenant.
    with (
        stack.acting_as(stack.user("alice", tenant_id="t2")),
        pytest.raises(grpc.aio.AioRpcError) as info,
    ):
        await bot.SummarizeConversation(pb.SummarizeConversationRequest(conversation_id=conv.id))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert len(stack.fake.requests) == 1


@pytest.mark.asyncio
async def test_summarize_edge_cases(stack) -> None:
    alice = stack.user("alice")
    empty = await stack.create(alice, conv_pb.CONVERSATION_KIND_GROUP, ["bob"], "Empty")
    bot = await stack.serve_bot()
    unconfigured = await stack.serve_bot(configured=False)
    with stack.acting_as(alice):
        resp = await bot.SummarizeConversation(
            pb.SummarizeConversationRequest(conversation_id=empty.id)
        )
        assert (resp.summary, resp.model_available) == (NOTHING_TO_SUMMARIZE, True)

        resp = await unconfigured.SummarizeConversation(
            pb.SummarizeConversationRequest(conversation_id=empty.id)
        )
        assert (resp.summary, resp.model_available) == (NOT_CONFIGURED_SUMMARY, False)

        await stack.send(alice, empty.id, "now there is something")
        stack.fake.fail_next(3, status=500)
        resp = await bot.SummarizeConversation(
            pb.SummarizeConversationRequest(conversation_id=empty.id)
        )
        assert (resp.summary, resp.model_available) == (SUMMARY_UNAVAILABLE, True)

        with pytest.raises(grpc.aio.AioRpcError) as info:
            await bot.SummarizeConversation(pb.SummarizeConversationRequest())
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert stack.fake.requests and len(stack.fake.requests) == 3
