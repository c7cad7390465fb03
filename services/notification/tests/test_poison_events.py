"""Events that no retry can fix are dropped instead of holding the partition."""

import pytest
from aiokafka import ConsumerRecord

from confab.conversation.v1 import conversation_pb2 as conv_pb
from confab.conversation.v1 import events_pb2
from confab_core.clock import FakeClock
from confab_core.sealed_events import EventOpener
from notification.handlers.events import NotificationHandler


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


def handler() -> NotificationHandler:
    # No peers and no keys: any attempt to use one fails the test with an AttributeError.
    return NotificationHandler(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        FakeClock(),
        "x@y.z",
        EventOpener(None, "notification-test"),  # type: ignore[arg-type]
    )


@pytest.mark.asyncio
async def test_undecodable_or_unsealed_bytes_are_dropped() -> None:
    await handler().handle_record(record(b"\xff\xff not a protobuf"))


@pytest.mark.asyncio
async def test_message_event_without_tenant_is_dropped() -> None:
    event = events_pb2.ConversationEvent(
        conversation_id="c1",
        message_created=events_pb2.MessageCreated(
            message=conv_pb.Message(id="m1", sender_id="alice", text="hi")
        ),
    )
    await handler().handle(event)
