"""Canned replies against a real MongoDB-wire server: rights, uniqueness, bad input
without partial writes, personal and tenant isolation, ranked search with paging,
sealing at rest, rendering, sending, audit, export and erasure."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import bson
import grpc
import pytest
import pytest_asyncio

from confab.conversation.v1 import canned_pb2 as cpb
from confab.conversation.v1 import canned_pb2_grpc as cpb_grpc
from confab.conversation.v1 import conversation_pb2 as pb
from confab_core import mongo
from confab_core.clock import FakeClock
from confab_core.crypto import LocalKeyFileProvider, blob_key_id
from confab_core.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from confab_core.grpcx.client import channel
from confab_core.grpcx.server import GrpcServer
from confab_core.identity import (
    PLATFORM_TENANT_ID,
    ROLE_AGENT,
    ROLE_MEMBER,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
)
from confab_core.servicetoken import CONVERSATION
from confab_devservers import MongoServer
from conversation.canned_servicer import CannedReplyServicer, SupportProfileServicer
from conversation.handlers.audit import AuditTrail
from conversation.handlers.canned import (
    CANNED_CREATED,
    CANNED_DELETED,
    CANNED_UPDATED,
    PROFILE_UPDATED,
    CannedHandler,
)
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.jobs import JobHandler
from conversation.handlers.keys import KeyHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.support import SupportHandler
from conversation.handlers.unit import UnitOfWork
from conversation.jobs.export import canned_record
from conversation.jobs.runner import JobRunner
from conversation.reencrypt import ReencryptRunner
from conversation.storage.canned import CANNED_COLLECTION, PROFILE_COLLECTION
from conversation.storage.db import TENANT_COLLECTIONS, Database

from .conftest import TENANT_A, TENANT_B, create, user
from .test_jobs import kinds
from .test_servicer import AUTH, GATEWAY_AUTH, As, trailing_code

ADMIN = user("root", TENANT_A, ROLE_TENANT_ADMIN)
ANN = user("ann", TENANT_A, ROLE_MEMBER, ROLE_AGENT)
BEN = user("ben", TENANT_A, ROLE_MEMBER, ROLE_AGENT)
MEMBER = user("mia", TENANT_A)
ADMIN_B = user("root", TENANT_B, ROLE_TENANT_ADMIN)
SUPER = user("staff", PLATFORM_TENANT_ID, ROLE_SUPER_ADMIN)
ANN_B = user("ann", TENANT_B, ROLE_MEMBER, ROLE_AGENT)


@pytest.fixture
def canned(unit: UnitOfWork, messages: MessageHandler) -> CannedHandler:
    return CannedHandler(unit, messages)


async def _count(db: Database) -> int:
    return await db.db[CANNED_COLLECTION].count_documents({})


@pytest.mark.asyncio
async def test_who_may_create_what(canned: CannedHandler) -> None:
    shared = await canned.create(ADMIN, scope="shared", shortcode="hello", body="Hello!")
    assert (shared.scope, shared.owner_id) == ("shared", "")
    personal = await canned.create(ANN, scope="personal", shortcode="hello", body="Hi!")
    assert (personal.scope, personal.owner_id) == ("personal", "ann")
    with pytest.raises(PermissionDenied):
        await canned.create(ANN, scope="shared", shortcode="mine", body="x")
    with pytest.raises(PermissionDenied):
        await canned.create(MEMBER, scope="personal", shortcode="mine", body="x")
    with pytest.raises(PermissionDenied):
        await canned.search(MEMBER, query="", limit=0, page_token="")
    with pytest.raises(InvalidArgument) as info:
        await canned.create(ANN, scope="team", shortcode="mine", body="x")
    assert info.value.code == "invalid_scope"


@pytest.mark.asyncio
async def test_shortcode_unique_per_scope_and_owner(canned: CannedHandler, db: Database) -> None:
    await canned.create(ADMIN, scope="shared", shortcode="bye", body="Bye")
    await canned.create(ANN, scope="personal", shortcode="bye", body="Bye from Ann")
    await canned.create(BEN, scope="personal", shortcode="bye", body="Bye from Ben")
    with pytest.raises(Conflict) as info:
        await canned.create(ADMIN, scope="shared", shortcode="bye", body="Again")
    assert info.value.code == "shortcode_taken"
    with pytest.raises(Conflict):
        await canned.create(ANN, scope="personal", shortcode="bye", body="Again")
    # The other tenant has its own shortcodes.
    await canned.create(ADMIN_B, scope="shared", shortcode="bye", body="Bye B")
    assert await _count(db) == 4
    # A rename onto a taken shortcode is refused too, and changes nothing.
    other = await canned.create(ANN, scope="personal", shortcode="later", body="Later")
    with pytest.raises(Conflict):
        await canned.update(ANN, other.id, shortcode="bye", body="changed")
    assert (await canned.get(ANN, other.id)).body == "Later"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("shortcode", "body", "code"),
    [
        ("Bad Code", "ok", "invalid_shortcode"),
        ("x", "ok", "invalid_shortcode"),
        ("fine", "Hi {{requester.nmae}}", "unknown_variable"),
        ("fine", "", "invalid_body"),
    ],
)
async def test_bad_input_writes_nothing(
    canned: CannedHandler, db: Database, shortcode: str, body: str, code: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        await canned.create(ANN, scope="personal", shortcode=shortcode, body=body)
    assert info.value.code == code
    assert await _count(db) == 0
    reply = await canned.create(ANN, scope="personal", shortcode="keep", body="Kept")
    with pytest.raises(InvalidArgument) as info:
        await canned.update(
            ANN,
            reply.id,
            shortcode=shortcode if code == "invalid_shortcode" else None,
            body=body if code != "invalid_shortcode" else None,
        )
    assert info.value.code == code
    assert await canned.get(ANN, reply.id) == reply


@pytest.mark.asyncio
async def test_personal_replies_are_the_owners_alone(canned: CannedHandler) -> None:
    mine = await canned.create(ANN, scope="personal", shortcode="secret", body="Ann's own")
    shared = await canned.create(ADMIN, scope="shared", shortcode="common", body="Everyone's")
    for stranger in (BEN, ADMIN):
        with pytest.raises(NotFound) as info:
            await canned.get(stranger, mine.id)
        assert info.value.code == "canned_reply_not_found"
        with pytest.raises(NotFound):
            await canned.update(stranger, mine.id, shortcode=None, body="stolen")
        with pytest.raises(NotFound):
            await canned.delete(stranger, mine.id)
        page = await canned.search(stranger, query="", limit=0, page_token="")
        assert [r.id for r in page.replies] == [shared.id]
    page = await canned.search(ANN, query="", limit=0, page_token="")
    assert [r.id for r in page.replies] == [mine.id, shared.id]
    # An agent sees a shared reply but may not change it.
    with pytest.raises(PermissionDenied):
        await canned.update(ANN, shared.id, shortcode=None, body="mine now")
    with pytest.raises(PermissionDenied):
        await canned.delete(ANN, shared.id)
    await canned.delete(ANN, mine.id)
    with pytest.raises(NotFound):
        await canned.get(ANN, mine.id)


@pytest.mark.asyncio
async def test_another_tenants_reply_is_not_found(canned: CannedHandler) -> None:
    shared = await canned.create(ADMIN, scope="shared", shortcode="hello", body="Hello")
    personal = await canned.create(ANN, scope="personal", shortcode="hello", body="Hi")
    for reply_id in (shared.id, personal.id):
        for caller in (ADMIN_B, ANN_B):
            with pytest.raises(NotFound):
                await canned.get(caller, reply_id)
            with pytest.raises(NotFound):
                await canned.delete(caller, reply_id)
    assert (await canned.search(ANN_B, query="", limit=0, page_token="")).replies == []


@pytest.mark.asyncio
async def test_search_ranks_and_pages(canned: CannedHandler) -> None:
    await canned.create(ADMIN, scope="shared", shortcode="greeting", body="We issue a refund")
    await canned.create(ADMIN, scope="shared", shortcode="late-refund", body="Sorry")
    await canned.create(ADMIN, scope="shared", shortcode="refund", body="Refunds take 5 days")
    await canned.create(ADMIN, scope="shared", shortcode="unrelated", body="Nothing here")
    await canned.create(ANN, scope="personal", shortcode="refund", body="My refund text")
    await canned.create(BEN, scope="personal", shortcode="refund-ben", body="Ben's refund")
    page = await canned.search(ANN, query="refund", limit=0, page_token="")
    got = [(r.scope, r.shortcode) for r in page.replies]
    assert got == [
        ("personal", "refund"),
        ("shared", "refund"),
        ("shared", "late-refund"),
        ("shared", "greeting"),
    ]
    assert page.next_page_token == ""
    # Body words are matched whatever their case or accents, all of them.
    page = await canned.search(ANN, query="REFUNDS Days", limit=0, page_token="")
    assert [r.shortcode for r in page.replies] == ["refund"]
    # Paging walks the same order, two at a time.
    walked: list[tuple[str, str]] = []
    token = ""
    while True:
        page = await canned.search(ANN, query="refund", limit=2, page_token=token)
        walked += [(r.scope, r.shortcode) for r in page.replies]
        token = page.next_page_token
        if not token:
            break
    assert walked == got
    # A token is bound to its caller and query.
    first = await canned.search(ANN, query="refund", limit=1, page_token="")
    for caller, query in ((BEN, "refund"), (ANN, "other")):
        with pytest.raises(InvalidArgument) as info:
            await canned.search(caller, query=query, limit=1, page_token=first.next_page_token)
        assert info.value.code == "invalid_cursor"
    with pytest.raises(InvalidArgument):
        await canned.search(ANN, query="refund", limit=1, page_token="not-a-token")


@pytest.mark.asyncio
async def test_body_is_sealed_at_rest(canned: CannedHandler, db: Database) -> None:
    reply = await canned.create(
        ANN, scope="personal", shortcode="pw", body="Your passphrase is zanzibarquokka"
    )
    await canned.set_profile(ADMIN, "Quokkatronics Support")
    raw = await db.db[CANNED_COLLECTION].find_one({"_id": reply.id})
    assert raw is not None and isinstance(raw["body"], bytes)
    assert "zanzibarquokka" not in raw["body_terms"]
    dump = b"".join(
        [bson.encode(d) async for d in db.db[CANNED_COLLECTION].find({})]
        + [bson.encode(d) async for d in db.db[PROFILE_COLLECTION].find({})]
    ).lower()
    assert b"zanzibarquokka" not in dump and b"quokkatronics" not in dump
    # And it is still found by its words.
    page = await canned.search(ANN, query="zanzibarquokka", limit=0, page_token="")
    assert [r.id for r in page.replies] == [reply.id]


@pytest.mark.asyncio
async def test_render_and_send(
    canned: CannedHandler, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = (await create(conversations, ANN, members=["mia"])).conversation
    hello = await canned.create(
        ANN, scope="personal", shortcode="hi", body="Hi, {{agent.name}} of {{tenant.name}}."
    )
    # The tenant id until an admin names the tenant.
    assert await canned.render(ANN, conv.id, hello.id) == f"Hi, Ann of {TENANT_A}."
    await canned.set_profile(ADMIN, "  Acme Support ")
    assert await canned.render(ANN, conv.id, hello.id) == "Hi, Ann of Acme Support."
    sent = await canned.send(ANN, conv.id, hello.id, "c-1")
    assert sent.created and sent.message.text == "Hi, Ann of Acme Support."
    assert sent.message.sender_id == "ann"
    # A retry (even after the reply changed) is the same message.
    await canned.update(ANN, hello.id, shortcode=None, body="Changed {{agent.name}}")
    again = await canned.send(ANN, conv.id, hello.id, "c-1")
    assert not again.created and again.message.id == sent.message.id
    page = await messages.page(ANN, conversation_id=conv.id, after_seq=0, before_seq=0, limit=10)
    assert [m.text for m in page.messages] == ["Hi, Ann of Acme Support."]


@pytest.mark.asyncio
async def test_ticket_variables_outside_a_ticket_are_unavailable(
    canned: CannedHandler, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = (await create(conversations, ANN, members=["mia"])).conversation
    reply = await canned.create(ANN, scope="personal", shortcode="tk", body="On {{ticket.id}}")
    with pytest.raises(InvalidArgument) as info:
        await canned.render(ANN, conv.id, reply.id)
    assert info.value.code == "variable_unavailable"
    with pytest.raises(InvalidArgument):
        await canned.send(ANN, conv.id, reply.id, "c-2")
    page = await messages.page(ANN, conversation_id=conv.id, after_seq=0, before_seq=0, limit=10)
    assert page.messages == []


@pytest.mark.asyncio
async def test_ticket_and_requester_variables_in_a_ticket(
    unit: UnitOfWork, canned: CannedHandler
) -> None:
    opened = await SupportHandler(unit).open(MEMBER, subject="Printer on fire", text="help!")
    conv_id = opened.ticket.conversation_id
    reply = await canned.create(
        ADMIN,
        scope="shared",
        shortcode="ack",
        body="Hi {{requester.name}} ({{ requester.email }}), {{agent.name}} has "
        "{{ticket.id}}: {{ticket.subject}}.",
    )
    text = await canned.render(ANN, conv_id, reply.id)
    assert text == (
        f"Hi Mia (mia@{TENANT_A}.example), Ann has {opened.ticket.id}: Printer on fire."
    )
    sent = await canned.send(ANN, conv_id, reply.id, "t-1")
    assert sent.created and sent.message.text == text
    assert sent.message.sender_role == "agent"
    # Agents work support conversations without joining; members only their own.
    with pytest.raises(PermissionDenied):
        await canned.render(MEMBER, conv_id, reply.id)


@pytest.mark.asyncio
async def test_render_needs_a_readable_conversation(
    canned: CannedHandler, conversations: ConversationHandler
) -> None:
    conv = (await create(conversations, ANN, members=["mia"])).conversation
    reply = await canned.create(BEN, scope="personal", shortcode="hi", body="Hi")
    with pytest.raises(NotFound):
        await canned.render(BEN, conv.id, reply.id)
    with pytest.raises(NotFound):
        await canned.send(ANN_B, conv.id, reply.id, "c-3")
    # Someone else's personal reply cannot be rendered either.
    with pytest.raises(NotFound):
        await canned.render(ANN, conv.id, reply.id)


@pytest.mark.asyncio
async def test_profile_rights_and_bounds(canned: CannedHandler) -> None:
    assert (await canned.profile(MEMBER))[0] == TENANT_A
    with pytest.raises(PermissionDenied):
        await canned.set_profile(ANN, "Ours")
    for bad in ("", "   ", "x" * 101):
        with pytest.raises(InvalidArgument) as info:
            await canned.set_profile(ADMIN, bad)
        assert info.value.code == "invalid_name"
    await canned.set_profile(ADMIN, "Acme")
    assert (await canned.profile(MEMBER))[0] == "Acme"
    assert (await canned.profile(ADMIN_B))[0] == TENANT_B


@pytest.mark.asyncio
async def test_shared_changes_are_audited(
    canned: CannedHandler, db: Database, clock: FakeClock
) -> None:
    shared = await canned.create(ADMIN, scope="shared", shortcode="s1", body="One")
    await canned.update(ADMIN, shared.id, shortcode="s2", body=None)
    await canned.delete(ADMIN, shared.id)
    mine = await canned.create(ANN, scope="personal", shortcode="p1", body="Mine")
    await canned.delete(ANN, mine.id)
    await canned.set_profile(ADMIN, "Acme")
    records = await AuditTrail(db, clock).query(ADMIN)
    got = [(r.entry.action, r.entry.target.id) for r in reversed(records)]
    assert got == [
        (CANNED_CREATED, shared.id),
        (CANNED_UPDATED, shared.id),
        (CANNED_DELETED, shared.id),
        (PROFILE_UPDATED, TENANT_A),
    ]
    updated = next(r.entry for r in records if r.entry.action == CANNED_UPDATED)
    assert (updated.before["shortcode"], updated.after["shortcode"]) == ("s1", "s2")


@pytest.mark.asyncio
async def test_export_and_erasure_storage(canned: CannedHandler, db: Database) -> None:
    assert CANNED_COLLECTION in TENANT_COLLECTIONS and PROFILE_COLLECTION in TENANT_COLLECTIONS
    shared = await canned.create(ADMIN, scope="shared", shortcode="s1", body="Shared")
    mine = await canned.create(ANN, scope="personal", shortcode="p1", body="Mine {{agent.name}}")
    await canned.create(BEN, scope="personal", shortcode="p1", body="Ben's")
    store = db.for_tenant(TENANT_A)
    own = await store.canned.page_by_id("", 10, "ann")
    assert [canned_record(r) for r in own] == [
        {
            "type": "canned_reply",
            "id": mine.id,
            "scope": "personal",
            "owner_id": "ann",
            "shortcode": "p1",
            "body": "Mine {{agent.name}}",
            "created_at": mine.created_at.isoformat(),
            "updated_at": mine.updated_at.isoformat(),
        }
    ]
    assert await store.canned.count_where(None) == 3
    assert await store.canned.delete_owned("ann") == 1
    left = {r.id for r in await store.canned.page_by_id("", 10, None)}
    assert shared.id in left and mine.id not in left and len(left) == 2
    with pytest.raises(ValueError):
        await store.canned.delete_owned("")


@pytest_asyncio.fixture
async def stubs(
    canned: CannedHandler,
) -> AsyncIterator[tuple[cpb_grpc.CannedReplyServiceStub, cpb_grpc.SupportProfileServiceStub]]:
    server = GrpcServer(0, AUTH, host="127.0.0.1")
    replies, profiles = CannedReplyServicer(canned), SupportProfileServicer(canned)
    server.add(
        lambda s: cpb_grpc.add_CannedReplyServiceServicer_to_server(replies, s),
        cpb.DESCRIPTOR.services_by_name["CannedReplyService"].full_name,
    )
    server.add(
        lambda s: cpb_grpc.add_SupportProfileServiceServicer_to_server(profiles, s),
        cpb.DESCRIPTOR.services_by_name["SupportProfileService"].full_name,
    )
    port = await server.start()
    ch = channel(f"127.0.0.1:{port}", GATEWAY_AUTH, CONVERSATION)
    try:
        yield cpb_grpc.CannedReplyServiceStub(ch), cpb_grpc.SupportProfileServiceStub(ch)
    finally:
        await ch.close()
        await server.stop(0)


@pytest.mark.asyncio
async def test_over_grpc(
    stubs: tuple[cpb_grpc.CannedReplyServiceStub, cpb_grpc.SupportProfileServiceStub],
    conversations: ConversationHandler,
) -> None:
    replies, profiles = stubs
    conv = (await create(conversations, ANN, members=["mia"])).conversation
    with As(ANN):
        made = await replies.CreateCannedReply(
            cpb.CreateCannedReplyRequest(
                scope=cpb.CANNED_SCOPE_PERSONAL, shortcode="hi", body="Hi from {{agent.name}}"
            ),
            timeout=10,
        )
        assert made.reply.scope == cpb.CANNED_SCOPE_PERSONAL and made.reply.owner_id == "ann"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await replies.CreateCannedReply(
                cpb.CreateCannedReplyRequest(
                    scope=cpb.CANNED_SCOPE_PERSONAL, shortcode="hi", body="again"
                ),
                timeout=10,
            )
        assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert trailing_code(info.value) == "shortcode_taken"
        sent = await replies.SendCannedReply(
            cpb.SendCannedReplyRequest(
                conversation_id=conv.id, canned_id=made.reply.id, client_msg_id="m-1"
            ),
            timeout=10,
        )
        assert sent.created and sent.message.text == "Hi from Ann"
        assert sent.message.kind == pb.MESSAGE_KIND_TEXT
        listed = await replies.ListCannedReplies(cpb.ListCannedRepliesRequest(query="h"))
        assert [r.id for r in listed.replies] == [made.reply.id]
        got = await profiles.GetSupportProfile(cpb.GetSupportProfileRequest(), timeout=10)
        assert got.profile.name == TENANT_A and not got.profile.HasField("updated_at")
    with As(ADMIN):
        set_ = await profiles.UpdateSupportProfile(
            cpb.UpdateSupportProfileRequest(name="Acme"), timeout=10
        )
        assert set_.profile.name == "Acme" and set_.profile.HasField("updated_at")
    with As(BEN), pytest.raises(grpc.aio.AioRpcError) as info:
        await replies.RenderCannedReply(
            cpb.RenderCannedReplyRequest(conversation_id=conv.id, canned_id=made.reply.id)
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest_asyncio.fixture
async def clocked(
    mongo_server: MongoServer, key_file: Path
) -> AsyncIterator[tuple[Database, FakeClock]]:
    """A database on a fake clock, so a rotation comes due without waiting."""
    clock = FakeClock()
    client = mongo.connect(mongo_server.url, "test")
    name = f"conv_{uuid.uuid4().hex[:12]}"
    db = Database(
        client,
        name,
        LocalKeyFileProvider(key_file),
        clock,
        key_cache_ttl=timedelta(seconds=60),
        rotation_delay=timedelta(seconds=120),
    )
    await db.ensure_indexes()
    try:
        yield db, clock
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.mark.asyncio
async def test_key_rotation_reseals_bodies_and_names(
    clocked: tuple[Database, FakeClock], wakeup: asyncio.Event
) -> None:
    db, clock = clocked
    unit = UnitOfWork(db, clock, wakeup)
    handler = CannedHandler(unit, MessageHandler(unit))
    reply = await handler.create(ANN, scope="personal", shortcode="pw", body="Hello marmalade")
    await handler.set_profile(ADMIN, "Marmalade Inc")
    keys = KeyHandler(db)
    await keys.rotate(TENANT_A)
    clock.advance(121)
    clock.advance(61)
    runner = ReencryptRunner(db, batch_size=50, poll_seconds=1, lease_seconds=30, owner="a")
    while await runner.run_once() > 0:
        pass
    for name, field in ((CANNED_COLLECTION, "body"), (PROFILE_COLLECTION, "name")):
        async for doc in db.db[name].find({"tenant_id": TENANT_A}):
            assert blob_key_id(doc[field]) == "k2", name
    assert (await handler.get(ANN, reply.id)).body == "Hello marmalade"
    assert (await handler.profile(ANN))[0] == "Marmalade Inc"
    found = await handler.search(ANN, query="marmalade", limit=0, page_token="")
    assert [r.id for r in found.replies] == [reply.id]


@pytest.mark.asyncio
async def test_export_and_erasure_jobs(
    canned: CannedHandler, unit: UnitOfWork, db: Database, clock: FakeClock
) -> None:
    shared = await canned.create(ADMIN, scope="shared", shortcode="s1", body="Shared words")
    mine = await canned.create(ANN, scope="personal", shortcode="p1", body="Ann's words")
    bens = await canned.create(BEN, scope="personal", shortcode="p1", body="Ben's words")
    jobs = JobHandler(unit, asyncio.Event(), AuditTrail(db, clock))
    run = JobRunner(db, clock, kinds(unit, 10), lease_seconds=30, poll_seconds=0.01)

    async def exported(scope: str, key: str) -> list[dict[str, object]]:
        job = await jobs.create_export(ADMIN, scope=scope, key=key, fmt="ndjson")
        assert await run.run_once()
        assert (await jobs.get(ADMIN, job.id)).status == "succeeded"
        chunk = await jobs.read_chunk(ADMIN, job.id, 0)
        data = b"".join(
            [chunk.data]
            + [(await jobs.read_chunk(ADMIN, job.id, p)).data for p in range(1, chunk.parts)]
        )
        records = [json.loads(line) for line in data.decode().splitlines()]
        return [r for r in records if r["type"] in ("canned_reply", "support_profile")]

    assert [r["id"] for r in await exported("user", "ann")] == [mine.id]
    assert {r["id"] for r in await exported("tenant", "")} == {shared.id, mine.id, bens.id}
    await canned.set_profile(ADMIN, "Acme Support")
    tenant_records = await exported("tenant", "")
    assert [r["name"] for r in tenant_records if r["type"] == "support_profile"] == ["Acme Support"]
    erasure = await jobs.create_user_erasure(ADMIN, "ann")
    while await run.run_once():
        pass
    assert (await jobs.get(ADMIN, erasure.id)).status == "succeeded"
    left = await db.db[CANNED_COLLECTION].distinct("_id", {"tenant_id": TENANT_A})
    assert sorted(left) == sorted([shared.id, bens.id])
    # The tenant's erasure takes the rest, and only the tenant's.
    await canned.set_profile(ADMIN, "Acme")
    await canned.set_profile(ADMIN_B, "Other")
    theirs = await canned.create(ADMIN_B, scope="shared", shortcode="s1", body="Stays")
    tenant_job = await jobs.create_tenant_erasure(SUPER, TENANT_A, TENANT_A)
    while await run.run_once():
        pass
    assert (await jobs.get_tenant_job(SUPER, TENANT_A, tenant_job.id)).status == "succeeded"
    for name in (CANNED_COLLECTION, PROFILE_COLLECTION):
        assert await db.db[name].count_documents({"tenant_id": TENANT_A}) == 0, name
        assert await db.db[name].count_documents({"tenant_id": TENANT_B}) == 1, name
    assert (await canned.get(ANN_B, theirs.id)).body == "Stays"


@pytest.mark.asyncio
async def test_a_canned_send_is_the_tickets_first_response(unit: UnitOfWork, db: Database) -> None:
    support = SupportHandler(unit)
    canned = CannedHandler(unit, MessageHandler(unit, tickets=support))
    opened = await support.open(MEMBER, subject="Where is my parcel?", text="hello?")
    reply = await canned.create(
        ANN, scope="personal", shortcode="on-it", body="On it, {{requester.name}}!"
    )
    await canned.send(ANN, opened.ticket.conversation_id, reply.id, "r-1")
    ticket = await db.for_tenant(TENANT_A).tickets.get(opened.ticket.id)
    assert ticket is not None and ticket.first_response_at is not None
