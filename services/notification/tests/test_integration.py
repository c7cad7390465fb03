"""The notification service against real conversation, presence, Kafka, MongoDB and SMTP."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from confab.conversation.v1 import conversation_pb2 as conv_pb
from confab.conversation.v1 import events_pb2
from confab.notification.v1 import notification_pb2 as pb
from confab.presence.v1 import presence_pb2 as presence_pb
from confab_devservers import SmtpSink, free_port
from notification.handlers.events import service_caller
from notification.mail import SmtpMailer

BOB_EMAIL = "bob@example.com"


def event_for(tenant_id: str, message: conv_pb.Message, kind: int) -> events_pb2.ConversationEvent:
    """The event the conversation service publishes for ``message``."""
    return events_pb2.ConversationEvent(
        event_id=f"evt-{message.id}",
        tenant_id=tenant_id,
        conversation_id=message.conversation_id,
        actor_id=message.sender_id,
        message_created=events_pb2.MessageCreated(message=message, conversation_kind=kind),
    )


def to(address: str):  # type: ignore[no-untyped-def]
    return lambda m: address in m.rcpt_tos


@pytest.mark.asyncio
async def test_offline_member_gets_one_email_through_kafka(stack, smtp: SmtpSink) -> None:
    alice = stack.user("alice", "alice@example.com")
    bob = stack.user("bob", BOB_EMAIL)
    carol = stack.user("carol", "carol@example.com")
    for person in (alice, bob, carol):
        await stack.register(person)
    # carol has a live connection; bob never connected, so presence says offline.
    await stack.connect(carol)
    conv = await stack.create(alice, conv_pb.CONVERSATION_KIND_GROUP, ["bob", "carol"], "Launch")
    await stack.start_consumer()

    message = await stack.send(alice, conv.id, "Hello @bob, ready for Friday?")

    email = await asyncio.to_thread(smtp.wait_for, to(BOB_EMAIL), 60)
    assert email.subject == "New message in Launch"
    assert email.rcpt_tos == (BOB_EMAIL,)
    assert "Alice mentioned you in Launch" in email.body
    assert "Hello @bob, ready for Friday?" in email.body
    record = await stack.handled_message(message.id)

    listed = await stack.list_notifications(bob)
    assert [(n.message_id, n.conversation_id) for n in listed] == [(message.id, conv.id)]
    assert listed[0].reason == pb.NOTIFICATION_REASON_MENTION
    assert listed[0].email_status == pb.DELIVERY_STATUS_SENT
    assert listed[0].preview == "Hello @bob, ready for Friday?"
    assert listed[0].user_id == "bob"
    # The sender and the online member hear nothing.
    assert await stack.list_notifications(alice) == []
    assert await stack.list_notifications(carol) == []

    # Kafka redelivers after a crash before the commit: handling again sends nothing.
    await stack.handler.handle_record(record)
    await stack.handler.handle_record(record)
    assert [m.rcpt_tos for m in smtp.messages] == [(BOB_EMAIL,)]
    assert len(await stack.list_notifications(bob)) == 1


@pytest.mark.asyncio
async def test_concurrent_deliveries_of_one_event_send_once(stack, smtp: SmtpSink) -> None:
    alice, bob = stack.user("alice"), stack.user("bob", BOB_EMAIL)
    await stack.register(bob)
    conv = await stack.create(alice, conv_pb.CONVERSATION_KIND_DIRECT, ["bob"])
    message = await stack.send(alice, conv.id, "are you there?")
    event = event_for(stack.tenant_id, message, conv_pb.CONVERSATION_KIND_DIRECT)

    await asyncio.gather(*(stack.handler.handle(event) for _ in range(5)))

    assert [m.rcpt_tos for m in smtp.messages] == [(BOB_EMAIL,)]
    assert smtp.messages[0].subject == "New message in a conversation"
    listed = await stack.list_notifications(bob)
    assert len(listed) == 1
    assert listed[0].reason == pb.NOTIFICATION_REASON_OFFLINE_MESSAGE


@pytest.mark.asyncio
async def test_member_without_email_is_recorded_as_skipped(stack, smtp: SmtpSink) -> None:
    alice, dave = stack.user("alice"), stack.user("dave")
    await stack.register(dave)
    conv = await stack.create(alice, conv_pb.CONVERSATION_KIND_GROUP, ["dave"], "Ops")
    message = await stack.send(alice, conv.id, "deploy done")

    await stack.handler.handle(event_for(stack.tenant_id, message, conv_pb.CONVERSATION_KIND_GROUP))

    listed = await stack.list_notifications(dave)
    assert [n.email_status for n in listed] == [pb.DELIVERY_STATUS_SKIPPED]
    assert smtp.messages == []


@pytest.mark.asyncio
async def test_unreachable_smtp_marks_failed_with_the_error(stack, smtp: SmtpSink) -> None:
    alice, bob = stack.user("alice"), stack.user("bob", BOB_EMAIL)
    await stack.register(bob)
    conv = await stack.create(alice, conv_pb.CONVERSATION_KIND_GROUP, ["bob"], "Ops")
    message = await stack.send(alice, conv.id, "anyone?")
    # Nothing listens on this port.
    handler = stack.make_handler(
        SmtpMailer(host="127.0.0.1", port=free_port(), timeout=2.0, connect_attempts=2)
    )
    event = event_for(stack.tenant_id, message, conv_pb.CONVERSATION_KIND_GROUP)

    await handler.handle(event)

    listed = await stack.list_notifications(bob)
    assert [n.email_status for n in listed] == [pb.DELIVERY_STATUS_FAILED]
    doc = await stack.db.notifications(stack.tenant_id).get_for_message("bob", message.id)
    assert doc is not None
    assert "SMTPConnect" in doc["email_error"]
    # The claim holds: a redelivery does not try again, even with SMTP back.
    await stack.handler.handle(event)
    assert smtp.messages == []


@pytest.mark.asyncio
async def test_other_events_and_system_messages_are_ignored(stack, smtp: SmtpSink) -> None:
    alice, bob = stack.user("alice"), stack.user("bob", BOB_EMAIL)
    await stack.register(bob)
    conv = await stack.create(alice, conv_pb.CONVERSATION_KIND_GROUP, ["bob"], "Ops")
    await stack.handler.handle(
        events_pb2.ConversationEvent(
            tenant_id=stack.tenant_id,
            conversation_id=conv.id,
            read_marker_changed=events_pb2.ReadMarkerChanged(user_id="alice", last_read_seq=1),
        )
    )
    message = await stack.send(alice, conv.id, "hi")
    message.kind = conv_pb.MESSAGE_KIND_SYSTEM
    await stack.handler.handle(event_for(stack.tenant_id, message, conv_pb.CONVERSATION_KIND_GROUP))
    assert await stack.list_notifications(bob) == []
    assert smtp.messages == []


@pytest.mark.asyncio
async def test_event_for_unknown_conversation_is_skipped_not_retried(stack, smtp: SmtpSink) -> None:
    message = conv_pb.Message(
        id="m-1", conversation_id="no-such-conversation", seq=1, sender_id="alice", text="x"
    )
    # Returns instead of raising: raising would make the consumer retry it forever.
    await stack.handler.handle(event_for(stack.tenant_id, message, conv_pb.CONVERSATION_KIND_GROUP))
    assert smtp.messages == []


@pytest.mark.asyncio
async def test_list_is_newest_first_limited_and_tenant_scoped(stack, smtp: SmtpSink) -> None:
    alice, bob = stack.user("alice"), stack.user("bob", BOB_EMAIL)
    await stack.register(bob)
    conv = await stack.create(alice, conv_pb.CONVERSATION_KIND_GROUP, ["bob"], "Ops")
    sent = []
    for i in range(3):
        message = await stack.send(alice, conv.id, f"update {i}")
        await stack.handler.handle(
            event_for(stack.tenant_id, message, conv_pb.CONVERSATION_KIND_GROUP)
        )
        sent.append(message.id)

    listed = await stack.list_notifications(bob)
    assert [n.message_id for n in listed] == sent[::-1]
    assert [n.message_id for n in await stack.list_notifications(bob, limit=2)] == sent[:0:-1]
    # The same user id in another tenant is another person.
    assert await stack.list_notifications(stack.user("bob", tenant_id="t2")) == []

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.list_notifications(bob, limit=101)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.asyncio
async def test_presence_is_asked_in_batches_it_accepts(stack) -> None:
    await stack.connect(stack.user("carol"))
    ids = [f"user-{i}" for i in range(1100)] + ["carol"]

    with stack.acting_as(service_caller(stack.tenant_id)):
        statuses = await stack.handler._presence.statuses(ids)

    assert len(statuses) == len(ids)
    assert statuses["carol"] == presence_pb.PRESENCE_STATUS_ONLINE
    assert statuses["user-1099"] in (
        presence_pb.PRESENCE_STATUS_OFFLINE,
        presence_pb.PRESENCE_STATUS_UNSPECIFIED,
    )


@pytest.mark.asyncio
async def test_mentions_notify_exactly_as_mention_count_counts(stack, smtp: SmtpSink) -> None:
    alice, bob = stack.user("alice"), stack.user("bob", BOB_EMAIL)
    await stack.register(bob)
    texts = {
        "@channel heads up": True,
        "@here anyone?": True,
        "@all standup": True,
        "ask bob (@bob)": True,
        "@bob, see this": True,
        "write to a@bob.com": False,
        "@bobby is someone else": False,
        "plain text": False,
    }
    seen: dict[str, bool] = {}
    for text in texts:
        # A conversation each, so mention_count counts this message alone.
        conv = await stack.create(alice, conv_pb.CONVERSATION_KIND_GROUP, ["bob"], "Ops")
        message = await stack.send(alice, conv.id, text)
        await stack.handler.handle(
            event_for(stack.tenant_id, message, conv_pb.CONVERSATION_KIND_GROUP)
        )
        counted = await stack.mention_count(bob, conv.id)
        [notice] = [n for n in await stack.list_notifications(bob) if n.message_id == message.id]
        mentioned = notice.reason == pb.NOTIFICATION_REASON_MENTION
        assert mentioned == (counted == 1), text
        seen[text] = mentioned
    assert seen == texts
