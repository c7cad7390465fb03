"""Events that no retry can fix are dropped instead of holding the partition."""

import pytest
from aiokafka import ConsumerRecord

from bot.handlers.replies import ReplyHandler
from confab.conversation.v1 import conversation_pb2 as conv_pb
from confab.conversation.v1 import events_pb2
from confab_core.sealed_events import EventOpener


def record(value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="confab.conversation.events.v1",
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value),
        headers=(),
    )


def handler() -> ReplyHandler:
    # No peers and no keys: any attempt to use one fails the test with an AttributeError.
    return ReplyHandler(
        conversations=None,  # type: ignore[arg-type]
        support=None,  # type: ignore[arg-type]
        botdata=None,  # type: ignore[arg-type]
        settings=None,  # type: ignore[arg-type]
        model=None,
        replier=None,
        counter=None,  # type: ignore[arg-type]
        config=None,  # type: ignore[arg-type]
        events=EventOpener(None, "bot-test"),  # type: ignore[arg-type]
    )


@pytest.mark.asyncio
async def test_undecodable_or_unsealed_bytes_are_dropped() -> None:
    await handler().handle_record(record(b"\xff\xff not a protobuf"))


@pytest.mark.asyncio
async def test_message_event_without_tenant_is_dropped() -> None:
    event = events_pb2.ConversationEvent(
        conversation_id="c1",
        message_created=events_pb2.MessageCreated(
            message=conv_pb.Message(id="m1", sender_id="alice", text="hi"),
            conversation_kind=conv_pb.CONVERSATION_KIND_AI_ASSISTANT,
        ),
    )
    await handler().handle(event)
