"""After an edit or a delete, no notification shows the old text: not the API, not
the stored record. Real conversation service, real Kafka events and their event_seq."""

from __future__ import annotations

import pytest

from confab.conversation.v1 import conversation_pb2 as conv_pb
from confab.notification.v1 import notification_pb2 as pb
from confab_devservers import SmtpSink

BOB_EMAIL = "bob@example.com"
SECRET = "the launch code is 0000"


async def previews_of(stack, bob, message_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [n.preview for n in await stack.list_notifications(bob) if n.message_id == message_id]


async def stored_previews(stack) -> list[str]:  # type: ignore[no-untyped-def]
    # The raw collection, not the repository: what a database dump would show.
    return [doc["preview"] async for doc in stack.db.db["notifications"].find({})]


@pytest.mark.asyncio
async def test_edit_refreshes_and_delete_blanks_every_preview(stack, smtp: SmtpSink) -> None:
    alice = stack.user("alice")
    bob = stack.user("bob", BOB_EMAIL)
    carol = stack.user("carol")
    for person in (bob, carol):
        await stack.register(person)
    conv = await stack.create(alice, conv_pb.CONVERSATION_KIND_GROUP, ["bob", "carol"], "Ops")
    await stack.start_consumer()

    message = await stack.send(alice, conv.id, f"@bob {SECRET}")
    await stack.handled_message(message.id)
    assert await previews_of(stack, bob, message.id) == [f"@bob {SECRET}"]
    assert await previews_of(stack, carol, message.id) == [f"@bob {SECRET}"]
    # Stored sealed with the tenant's key: a dump shows neither the text nor the email.
    dump = [str(doc) async for doc in stack.db.db["notifications"].find({})]
    assert len(dump) == 2
    assert not [d for d in dump if SECRET in d or BOB_EMAIL in d]

    await stack.edit(alice, conv.id, message.id, "@bob never mind")
    edit = await stack.handled_event("message_updated", message.id)
    for person in (bob, carol):
        assert await previews_of(stack, person, message.id) == ["@bob never mind"]

    await stack.delete(alice, conv.id, message.id)
    delete = await stack.handled_event("message_deleted", message.id)
    listed = [n for n in await stack.list_notifications(bob) if n.message_id == message.id]
    # The record stays (it is the claim that keeps a redelivery from e-mailing
    # again); only its text goes.
    assert [(n.preview, n.reason) for n in listed] == [("", pb.NOTIFICATION_REASON_MENTION)]
    assert await previews_of(stack, carol, message.id) == [""]
    assert await stored_previews(stack) == ["", ""]

    # Redelivered, and out of order: the older edit must not bring text back.
    for record in (delete, edit, delete):
        await stack.handler.handle_record(record)
    assert await stored_previews(stack) == ["", ""]
    # The e-mail had already gone out before the edit: it cannot be recalled.
    assert [m.rcpt_tos for m in smtp.messages] == [(BOB_EMAIL,)]


@pytest.mark.asyncio
async def test_an_older_edit_never_overwrites_a_newer_one(stack, smtp: SmtpSink) -> None:
    alice, bob = stack.user("alice"), stack.user("bob", BOB_EMAIL)
    await stack.register(bob)
    conv = await stack.create(alice, conv_pb.CONVERSATION_KIND_DIRECT, ["bob"])
    await stack.start_consumer()

    message = await stack.send(alice, conv.id, "first")
    await stack.handled_message(message.id)
    await stack.edit(alice, conv.id, message.id, "second")
    await stack.eventually(
        lambda: _is(previews_of(stack, bob, message.id), ["second"]), "second edit handled"
    )
    second = await stack.handled_event("message_updated", message.id)
    await stack.edit(alice, conv.id, message.id, "third")
    await stack.eventually(
        lambda: _is(previews_of(stack, bob, message.id), ["third"]), "third edit handled"
    )

    await stack.handler.handle_record(second)

    assert await previews_of(stack, bob, message.id) == ["third"]


async def _is(value, expected) -> bool:  # type: ignore[no-untyped-def]
    return bool(await value == expected)
