"""The tenant's PII policy applied by the conversation service to sends, edits
and file names, in each mode, read back from the raw collections."""

from __future__ import annotations

from typing import Any

import pytest

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.clock import FakeClock
from confab_core.errors import InvalidArgument
from confab_core.identity import ROLE_SERVICE, ROLE_TENANT_ADMIN, Caller
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.editing import Editing
from conversation.handlers.messages import MessageHandler
from conversation.handlers.moderation import ModerationHandler
from conversation.handlers.policy import PolicyHandler, PolicyPatch
from conversation.handlers.unit import UnitOfWork
from conversation.storage.db import Database

from .conftest import ALICE, BOB, TENANT_A, TENANT_B, create, send, user

ADMIN = user("root", TENANT_A, ROLE_TENANT_ADMIN)
ADMIN_B = user("root", TENANT_B, ROLE_TENANT_ADMIN)
BOT = user("confab-bot", TENANT_A, ROLE_SERVICE)
CARD = "4242 4242 4242 4242"
PII_TEXT = f"pay with {CARD} and mail bob@example.com"
FILE = {"url": "https://files.example/x.pdf", "content_type": "application/pdf", "size_bytes": 10}


@pytest.fixture
def policies(db: Database, clock: FakeClock) -> PolicyHandler:
    return PolicyHandler(db, clock)


@pytest.fixture
def msgs(unit: UnitOfWork, policies: PolicyHandler) -> MessageHandler:
    return MessageHandler(unit, policies)


async def _group(conversations: ConversationHandler, *members: Caller) -> str:
    created = await create(conversations, ALICE, members=[m.user_id for m in members])
    return created.conversation.id


async def _raw(db: Database, message_id: str) -> dict[str, Any]:
    doc = await db.db["messages"].find_one({"_id": message_id})
    assert doc is not None
    return doc


async def _raw_everywhere(db: Database) -> str:
    """Every document of every collection, as one string: where a value could hide."""
    out = []
    for name in await db.db.list_collection_names():
        async for doc in db.db[name].find({}):
            out.append(repr(doc))
    return "\n".join(out)


@pytest.mark.asyncio
async def test_flag_stores_as_written_marks_counts_and_queues(
    db: Database,
    unit: UnitOfWork,
    msgs: MessageHandler,
    policies: PolicyHandler,
    conversations: ConversationHandler,
) -> None:
    conv = await _group(conversations, BOB)
    sent = await send(msgs, ALICE, conv, PII_TEXT)
    assert sent.message.text == PII_TEXT
    assert sent.message.pii_kinds == ("email", "card")
    assert (await _raw(db, sent.message.id))["pii_kinds"] == ["email", "card"]
    plain = await send(msgs, ALICE, conv, "nothing to see")
    assert "pii_kinds" not in await _raw(db, plain.message.id)

    items, _ = await ModerationHandler(unit).queue(
        ADMIN, status="open", kind="pii", limit=10, page_token=""
    )
    assert [(i.entry.message_id, i.entry.pii_kinds, i.entry.author_id) for i in items] == [
        (sent.message.id, ("email", "card"), "alice")
    ]
    assert await policies.pii_counts(ADMIN) == {"email": 1, "card": 1}

    # An edit that adds PII flags the message; one that removes it clears the mark.
    edited = await msgs.edit(
        ALICE, conversation_id=conv, message_id=plain.message.id, text="ssn 123-45-6788"
    )
    assert edited.pii_kinds == ("ssn",)
    cleaned = await msgs.edit(
        ALICE, conversation_id=conv, message_id=sent.message.id, text="never mind"
    )
    assert cleaned.pii_kinds == ()
    assert "pii_kinds" not in await _raw(db, sent.message.id)
    items, _ = await ModerationHandler(unit).queue(
        ADMIN, status="open", kind="pii", limit=10, page_token=""
    )
    assert {i.entry.message_id for i in items} == {sent.message.id, plain.message.id}


@pytest.mark.asyncio
async def test_flag_applies_to_file_names_and_thread_replies(
    db: Database, msgs: MessageHandler, conversations: ConversationHandler
) -> None:
    conv = await _group(conversations, BOB)
    filed = await send(
        msgs,
        ALICE,
        conv,
        "the scan",
        kind=pb.MESSAGE_KIND_FILE,
        file={**FILE, "name": "passport bob@example.com.pdf"},
    )
    assert filed.message.pii_kinds == ("email",)
    root = await send(msgs, ALICE, conv, "thread")
    reply = await send(msgs, BOB, conv, "call +44 20 7946 0018", thread_root_id=root.message.id)
    assert reply.message.pii_kinds == ("phone",)


@pytest.mark.asyncio
async def test_mask_stores_placeholders_everywhere(
    db: Database, msgs: MessageHandler, policies: PolicyHandler, conversations: ConversationHandler
) -> None:
    await policies.update(ADMIN, PolicyPatch(pii_mode="mask"))
    conv = await _group(conversations, BOB)
    sent = await send(msgs, ALICE, conv, PII_TEXT)
    assert sent.message.text == "pay with [card ending 4242] and mail [email]"
    assert sent.message.pii_kinds == ()
    filed = await send(
        msgs,
        ALICE,
        conv,
        "iban GB82 WEST 1234 5698 7654 32",
        kind=pb.MESSAGE_KIND_FILE,
        file={**FILE, "name": "invoice for 123-45-6788.pdf"},
    )
    assert filed.message.text == "iban [iban ending 5432]"
    assert filed.message.file is not None
    assert filed.message.file.name == "invoice for [ssn].pdf"
    other = await send(msgs, ALICE, conv, "fine")
    edited = await msgs.edit(
        ALICE, conversation_id=conv, message_id=other.message.id, text="key AKIAIOSFODNN7EXAMPLE"
    )
    assert edited.text == "key [secret]"
    # No collection (messages, search words, the event log, the queue) kept any of it.
    raw = await _raw_everywhere(db)
    for value in (CARD, "4242424242424242", "bob@example.com", "GB82", "123-45-6788", "AKIAIOSF"):
        assert value not in raw
    assert await policies.pii_counts(ADMIN) == {
        "email": 1, "card": 1, "iban": 1, "ssn": 1, "secret": 1
    }  # fmt: skip


@pytest.mark.asyncio
async def test_block_refuses_naming_the_kinds_and_stores_nothing(
    db: Database, msgs: MessageHandler, policies: PolicyHandler, conversations: ConversationHandler
) -> None:
    await policies.update(ADMIN, PolicyPatch(pii_mode="block"))
    conv = await _group(conversations, BOB, BOT)
    with pytest.raises(InvalidArgument) as info:
        await send(msgs, ALICE, conv, PII_TEXT)
    assert info.value.code == "pii_blocked"
    assert "email, card" in info.value.message
    with pytest.raises(InvalidArgument) as info:
        await send(
            msgs,
            ALICE,
            conv,
            "see file",
            kind=pb.MESSAGE_KIND_FILE,
            file={**FILE, "name": "AB123456C.pdf"},
        )
    assert (info.value.code, "nino" in info.value.message) == ("pii_blocked", True)
    ok = await send(msgs, ALICE, conv, "no secrets here")
    with pytest.raises(InvalidArgument) as info:
        await msgs.edit(
            ALICE, conversation_id=conv, message_id=ok.message.id, text="mail a@example.org"
        )
    assert info.value.code == "pii_blocked"
    stored = await db.for_tenant(ALICE.tenant_id).messages.get(conv, ok.message.id)
    assert stored is not None and stored.text == "no secrets here"
    assert await db.db["messages"].count_documents({}) == 1
    # A bot cannot rephrase: its reply is masked instead of refused.
    bot = await send(msgs, BOT, conv, f"your card {CARD}", kind=pb.MESSAGE_KIND_BOT)
    assert bot.message.text == "your card [card ending 4242]"


@pytest.mark.asyncio
async def test_off_and_kind_lists(
    db: Database, msgs: MessageHandler, policies: PolicyHandler, conversations: ConversationHandler
) -> None:
    conv = await _group(conversations, BOB)
    await policies.update(ADMIN, PolicyPatch(pii_mode="off"))
    sent = await send(msgs, ALICE, conv, PII_TEXT)
    assert (sent.message.text, sent.message.pii_kinds) == (PII_TEXT, ())
    # Only cards are refused: the email passes, unmarked.
    await policies.update(ADMIN, PolicyPatch(pii_mode="block", pii_kinds=("card",)))
    mailed = await send(msgs, ALICE, conv, "mail bob@example.com")
    assert mailed.message.pii_kinds == ()
    with pytest.raises(InvalidArgument):
        await send(msgs, ALICE, conv, PII_TEXT)
    assert await policies.pii_counts(ADMIN) == {"card": 1}


@pytest.mark.asyncio
async def test_one_tenants_policy_never_applies_to_another(
    db: Database, msgs: MessageHandler, policies: PolicyHandler, conversations: ConversationHandler
) -> None:
    await policies.update(ADMIN, PolicyPatch(pii_mode="block"))
    bob_b = user("bob", TENANT_B)
    alice_b = user("alice", TENANT_B)
    created = await create(conversations, alice_b, members=[bob_b.user_id])
    sent = await send(msgs, alice_b, created.conversation.id, PII_TEXT)
    assert sent.message.pii_kinds == ("email", "card")
    assert await policies.pii_counts(ADMIN_B) == {"email": 1, "card": 1}
    assert await policies.pii_counts(ADMIN) == {}


@pytest.mark.asyncio
async def test_editing_alone_uses_the_default_policy(unit: UnitOfWork) -> None:
    # Handlers built without the app's shared cache still apply the policy.
    assert isinstance(Editing(unit).pii, type(MessageHandler(unit).pii))
