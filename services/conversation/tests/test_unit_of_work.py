"""The unit of work: one lock table per process, taken by every write, batches included."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from confab.conversation.v1 import events_pb2
from confab_core.clock import FakeClock
from confab_devservers import MongoServer, dev_key_file
from conversation import app
from conversation.handlers.base import HandlerBase
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.unit import Change, Taken, UnitOfWork
from conversation.settings import ConversationSettings
from conversation.storage.db import Database

from .conftest import ALICE, BOB, create, outbox, send, snapshot


@pytest.mark.asyncio
async def test_the_built_service_gives_every_handler_one_lock_table(
    mongo_server: MongoServer,
) -> None:
    settings = ConversationSettings(
        mongo_url=mongo_server.url,
        # Never dialled: the producer connects on its first send.
        kafka_bootstrap_servers="127.0.0.1:9",
        mongo_database=f"conv_{uuid.uuid4().hex[:12]}",
        grpc_port=0,
        internal_key="unit-of-work-tests-internal-key-32b",  # type: ignore[arg-type]
        key_file=dev_key_file(),
        # No virus scanner here: new files would stay pending.
        clamd_required=False,
    )
    service = await app.build(settings, FakeClock(), host="127.0.0.1")
    try:
        handlers = [h for h in vars(service.servicer).values() if isinstance(h, HandlerBase)]
        assert len(handlers) == 2
        assert len({id(h.unit.locks) for h in handlers}) == 1
        # An empty table (nothing held yet) is the one the handlers share.
        assert handlers[0].unit.locks.active() == 0
    finally:
        await service.close()


def test_handlers_cannot_be_built_with_a_table_of_their_own(unit: UnitOfWork) -> None:
    conversations, messages = ConversationHandler(unit), MessageHandler(unit)
    assert conversations.unit.locks is messages.unit.locks is unit.locks


async def _until_waiting(unit: UnitOfWork, key: tuple[str, str], holders: int) -> None:
    """Until ``holders`` hold or wait for ``key`` (the writes read the database first)."""
    async with asyncio.timeout(10):
        while unit.locks.holders(key) < holders:  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.001)


@pytest.mark.asyncio
async def test_group_committed_sends_wait_for_the_conversations_writer(
    unit: UnitOfWork, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    a = (await create(conversations, ALICE, members=["bob"])).conversation.id
    b = (await create(conversations, ALICE, members=["bob"])).conversation.id
    key = (ALICE.tenant_id, a)
    async with unit.locks.hold(key):
        first = asyncio.create_task(send(messages, ALICE, a, "one"))
        await _until_waiting(unit, key, 2)
        # These ride the next batch, two conversations in one transaction.
        rest = [
            asyncio.create_task(send(messages, BOB, a, "two")),
            asyncio.create_task(send(messages, BOB, b, "three")),
        ]
        assert not first.done()
    sent = [await first, *[await t for t in rest]]
    assert [s.message.seq for s in sent] == [1, 2, 1]
    assert unit.locks.active() == 0


@pytest.mark.asyncio
async def test_edits_reactions_and_reads_queue_behind_one_writer(
    unit: UnitOfWork, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    msg = (await send(messages, ALICE, conv)).message
    key = (ALICE.tenant_id, conv)
    async with unit.locks.hold(key):
        writes = [
            asyncio.create_task(
                messages.edit(ALICE, conversation_id=conv, message_id=msg.id, text="edited")
            ),
            asyncio.create_task(
                messages.react(BOB, conversation_id=conv, message_id=msg.id, emoji="+1")
            ),
            asyncio.create_task(messages.mark_read(BOB, conversation_id=conv, seq=1)),
            asyncio.create_task(conversations.add_members(ALICE, conv, ["carol"], 0)),
        ]
        await _until_waiting(unit, key, 1 + len(writes))
        assert not any(t.done() for t in writes)
    await asyncio.gather(*writes)
    seqs = [int(d["event_seq"]) for d in await outbox(unit.database, conv)]
    assert seqs == list(range(1, len(seqs) + 1))


@pytest.mark.asyncio
async def test_a_body_that_emits_the_wrong_number_of_events_writes_nothing(
    db: Database, unit: UnitOfWork, conversations: ConversationHandler
) -> None:
    conv = (await create(conversations, ALICE)).conversation.id
    before = await snapshot(db)

    async def body(t: Taken) -> None:
        t.emit(events_pb2.ConversationEvent(conversation_deleted=events_pb2.ConversationDeleted()))
        t.emit(events_pb2.ConversationEvent(conversation_deleted=events_pb2.ConversationDeleted()))

    with pytest.raises(RuntimeError, match="emitted 2 events, claimed 1"):
        await unit.one(Change(ALICE, conv), body)
    assert await snapshot(db) == before
