"""File names inside the compliance framework: found by search (members only) and
screened for PII like text, on real MongoDB-wire."""

from __future__ import annotations

import pytest

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.clock import FakeClock
from confab_core.errors import InvalidArgument
from confab_core.identity import ROLE_TENANT_ADMIN
from conversation.handlers import text as textutil
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.pii import PiiGuard
from conversation.handlers.policy import PolicyHandler, PolicyPatch
from conversation.storage.db import Database

from .conftest import ALICE, ALICE_B, BOB, CAROL, create, send, user

ADMIN = user("root", ALICE.tenant_id, ROLE_TENANT_ADMIN)
LINK = {"url": "https://files.example/q.pdf", "content_type": "application/pdf", "size_bytes": 9}


def test_message_terms_are_the_texts_and_the_names_words() -> None:
    assert textutil.message_terms("See this", "Quarterly-Budget_v2.xlsx") == [
        "see",
        "this",
        "quarterly",
        "budget_v2",
        "xlsx",
    ]
    assert textutil.message_terms("only text", None) == ["only", "text"]


@pytest.mark.asyncio
async def test_a_word_of_a_file_name_finds_the_message_for_members_only(
    conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    sent = await send(
        messages,
        ALICE,
        conv,
        "for Monday",
        kind=pb.MESSAGE_KIND_FILE,
        file={**LINK, "name": "Zanzibar roadmap.pdf"},
    )
    found = await messages.search(BOB, query="zanzibar", conversation_id="", limit=10)
    assert [m.id for m in found] == [sent.message.id]
    # A non-member of the tenant and another tenant find nothing.
    assert await messages.search(CAROL, query="zanzibar", conversation_id="", limit=10) == []
    assert await messages.search(ALICE_B, query="zanzibar", conversation_id="", limit=10) == []
    # An edit of the text keeps the name's words.
    await messages.edit(ALICE, conversation_id=conv, message_id=sent.message.id, text="Tuesday")
    found = await messages.search(BOB, query="zanzibar tuesday", conversation_id="", limit=10)
    assert [m.id for m in found] == [sent.message.id]


@pytest.mark.asyncio
async def test_an_uploaded_files_name_is_screened_by_the_tenants_policy(
    db: Database, clock: FakeClock
) -> None:
    policies = PolicyHandler(db, clock)
    guard = PiiGuard(db, policies)
    name = "payslip bob@example.com.pdf"
    # Off and flag: stored as written, not counted (the attaching message is).
    assert await guard.screen_file_name(ALICE, name) == name
    await policies.update(ADMIN, PolicyPatch(pii_mode="flag"))
    assert await guard.screen_file_name(ALICE, name) == name
    assert await policies.pii_counts(ADMIN) == {}
    await policies.update(ADMIN, PolicyPatch(pii_mode="mask"))
    assert await guard.screen_file_name(ALICE, name) == "payslip [email].pdf"
    await policies.update(ADMIN, PolicyPatch(pii_mode="block"))
    with pytest.raises(InvalidArgument) as refused:
        await guard.screen_file_name(ALICE, name)
    assert refused.value.code == "pii_blocked"
    assert await guard.screen_file_name(ALICE, "holiday.jpg") == "holiday.jpg"
    assert await policies.pii_counts(ADMIN) == {"email": 2}
