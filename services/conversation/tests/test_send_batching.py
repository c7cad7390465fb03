"""Group commit of sends: concurrent sends share transactions, and nothing about a
message (seq, read state, event, idempotency) differs from a send committed alone."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from confab_core.identity import Caller
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.storage.db import Database
from conversation.storage.members import member_id

from .conftest import ALICE, ALICE_B, BOB, create, decode, outbox, send


def batched_sends() -> float:
    """Messages committed in transactions that carried more than one."""
    total = REGISTRY.get_sample_value("confab_conversation_send_batch_messages_sum") or 0.0
    alone = (
        REGISTRY.get_sample_value("confab_conversation_send_batch_messages_bucket", {"le": "1.0"})
        or 0.0
    )
    return total - alone


@pytest.mark.asyncio
async def test_concurrent_sends_share_transactions_and_stay_gapless(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    a1 = (await create(conversations, ALICE, members=["bob"])).conversation.id
    a2 = (await create(conversations, ALICE, members=["bob"])).conversation.id
    b1 = (await create(conversations, ALICE_B, members=["bob"])).conversation.id
    plan: list[tuple[Caller, str]] = []
    for i in range(30):
        plan += [((ALICE, BOB)[i % 2], a1), (ALICE, a2), (ALICE_B, b1)]
    before = batched_sends()
    sent = await asyncio.gather(
        *(send(messages, c, conv, text=f"m{i}") for i, (c, conv) in enumerate(plan))
    )
    assert batched_sends() > before, "no two sends shared a transaction"
    assert all(s.created for s in sent)
    for conv, tenant_msgs in ((a1, 30), (a2, 30), (b1, 30)):
        mine = [s.message for s in sent if s.message.conversation_id == conv]
        assert sorted(m.seq for m in mine) == list(range(1, tenant_msgs + 1))
        events = [decode(d) for d in await outbox(db, conv)]
        created = [e for e in events if e.WhichOneof("payload") == "message_created"]
        assert [e.message_created.message.seq for e in created] == list(range(1, 31))
        by_seq = {m.seq: m.id for m in mine}
        assert all(
            by_seq[e.message_created.message.seq] == e.message_created.message.id for e in created
        )
        assert [e.event_seq for e in events] == list(range(1, len(events) + 1))
    # Each sender has read up to their own last message.
    last_bob = max(s.message.seq for s, (c, conv) in zip(sent, plan, strict=True) if c is BOB)
    bob = await db.db["members"].find_one({"_id": member_id(a1, "bob")})
    assert bob is not None and bob["last_read_seq"] >= last_bob
    conv_doc = await db.db["conversations"].find_one({"_id": a1})
    assert conv_doc is not None and conv_doc["last_seq"] == 30


@pytest.mark.asyncio
async def test_a_retry_in_a_batch_returns_the_stored_message_and_costs_no_seq(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    first = await send(messages, ALICE, conv, text="original", client_msg_id="c-1")
    results = await asyncio.gather(
        *(send(messages, BOB, conv, text=f"new {i}") for i in range(5)),
        send(messages, ALICE, conv, text="retry", client_msg_id="c-1"),
        *(send(messages, BOB, conv, text=f"more {i}") for i in range(5)),
    )
    retry = results[5]
    assert not retry.created
    assert retry.message.id == first.message.id and retry.message.text == "original"
    fresh = [r for r in results if r.created]
    assert sorted(r.message.seq for r in fresh) == list(range(2, 12))
    stored = [d async for d in db.db["messages"].find({"conversation_id": conv})]
    assert sorted(d["seq"] for d in stored) == list(range(1, 12))


@pytest.mark.asyncio
async def test_a_deleted_conversation_fails_only_its_own_sends(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    live = (await create(conversations, ALICE, members=["bob"])).conversation.id
    doomed = (await create(conversations, ALICE, members=["bob"])).conversation.id

    async def to_doomed() -> BaseException | None:
        try:
            await send(messages, ALICE, doomed, text="too late")
        except Exception as exc:
            return exc
        return None

    # Deleted behind the handler's back, after the send's own checks ran.
    original = messages.writable_by

    async def readable_then_delete(caller: Caller, conversation_id: str):  # type: ignore[no-untyped-def]
        found = await original(caller, conversation_id)
        if conversation_id == doomed:
            await db.db["conversations"].update_one({"_id": doomed}, {"$set": {"deleted": True}})
        return found

    messages.writable_by = readable_then_delete  # type: ignore[method-assign]
    results = await asyncio.gather(
        *(send(messages, BOB, live, text=f"fine {i}") for i in range(4)), to_doomed()
    )
    failure = results[-1]
    assert failure is not None and getattr(failure, "code", "") == "conversation_not_found"
    assert sorted(r.message.seq for r in results[:-1]) == [1, 2, 3, 4]  # type: ignore[union-attr]
    assert await db.db["messages"].count_documents({"conversation_id": doomed}) == 0
