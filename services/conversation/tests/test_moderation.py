"""Mutes, bans, reports, the queue, and the audit records they and every admin action leave."""

from __future__ import annotations

from datetime import timedelta

import pytest

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.clock import FakeClock
from confab_core.errors import (
    ConfabError,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from confab_core.identity import ROLE_AGENT, ROLE_TENANT_ADMIN
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.moderation import ModerationHandler
from conversation.handlers.unit import UnitOfWork
from conversation.storage.db import Database

from .conftest import ALICE, ALICE_B, BOB, CAROL, TENANT_B, create, decode, outbox, send, user

pytestmark = pytest.mark.asyncio

ADMIN = user("root", ALICE.tenant_id, ROLE_TENANT_ADMIN)
ADMIN_B = user("root", TENANT_B, ROLE_TENANT_ADMIN)
AGENT = user("agnes", ALICE.tenant_id, ROLE_AGENT)


@pytest.fixture
def moderation(unit: UnitOfWork) -> ModerationHandler:
    return ModerationHandler(unit)


async def refused(code: str, kind: type[ConfabError], awaitable: object) -> None:
    with pytest.raises(kind) as info:
        await awaitable  # type: ignore[misc]
    assert info.value.code == code


async def kinds(db: Database, conversation_id: str) -> list[str]:
    return [str(decode(d).WhichOneof("payload")) for d in await outbox(db, conversation_id)]


async def actions(db: Database, tenant: str = ALICE.tenant_id) -> list[str]:
    cursor = db.db["audit"].find({"tenant_id": tenant}).sort("seq", 1)
    return [d["action"] async for d in cursor]


async def group(conversations: ConversationHandler) -> str:
    return (await create(conversations, ALICE, members=["bob", "carol"])).conversation.id


async def test_a_muted_member_reads_but_cannot_send_react_or_edit(
    db: Database,
    conversations: ConversationHandler,
    messages: MessageHandler,
    moderation: ModerationHandler,
) -> None:
    conv = await group(conversations)
    mine = (await send(messages, BOB, conv, text="before")).message
    await moderation.sanction(
        ALICE, kind="mute", user_id="bob", conversation_id=conv, expires_at=None, reason="spam"
    )
    await refused("muted", PermissionDenied, send(messages, BOB, conv))
    await refused(
        "muted",
        PermissionDenied,
        messages.react(BOB, conversation_id=conv, message_id=mine.id, emoji="x"),
    )
    await refused(
        "muted",
        PermissionDenied,
        messages.edit(BOB, conversation_id=conv, message_id=mine.id, text="after"),
    )
    page = await messages.page(BOB, conversation_id=conv, after_seq=0, before_seq=0, limit=10)
    assert [m.text for m in page.messages] == ["before"]
    # Others still speak; a mute in one conversation stays there.
    await send(messages, CAROL, conv)
    other = (await create(conversations, BOB, members=["carol"])).conversation.id
    await send(messages, BOB, other)
    await moderation.lift(ALICE, kind="mute", user_id="bob", conversation_id=conv)
    await send(messages, BOB, conv, text="back")
    assert "member_muted" in await kinds(db, conv)
    assert "member_unmuted" in await kinds(db, conv)
    [muted] = [d async for d in db.db["audit"].find({"action": "user.muted"})]
    assert (muted["actor_id"], muted["target_id"], muted["conversation_id"]) == (
        "alice",
        "bob",
        conv,
    )
    assert muted["after"]["reason"] == "spam"


async def test_a_mute_expires_on_the_injected_clock(
    clock: FakeClock,
    conversations: ConversationHandler,
    messages: MessageHandler,
    moderation: ModerationHandler,
) -> None:
    conv = await group(conversations)
    until = clock.now() + timedelta(minutes=10)
    await moderation.sanction(
        ALICE, kind="mute", user_id="bob", conversation_id=conv, expires_at=until, reason=""
    )
    await refused("muted", PermissionDenied, send(messages, BOB, conv))
    assert len(await moderation.sanctions(ALICE, conversation_id=conv, user_id="", limit=0)) == 1
    clock.advance(601)
    await send(messages, BOB, conv)
    assert await moderation.sanctions(ALICE, conversation_id=conv, user_id="", limit=0) == []


async def test_a_ban_removes_and_keeps_out_even_of_a_public_channel(
    db: Database,
    conversations: ConversationHandler,
    messages: MessageHandler,
    moderation: ModerationHandler,
) -> None:
    channel = (
        await create(conversations, AGENT, kind=pb.CONVERSATION_KIND_PUBLIC_CHANNEL, title="c")
    ).conversation.id
    await conversations.join(BOB, channel)
    await moderation.sanction(
        AGENT, kind="ban", user_id="bob", conversation_id=channel, expires_at=None, reason=""
    )
    assert (await kinds(db, channel))[-2:] == ["member_banned", "member_removed"]
    assert [m.user_id for m, _ in await conversations.list_members(AGENT, channel)] == ["agnes"]
    await refused("banned", PermissionDenied, conversations.join(BOB, channel))
    await refused("banned", PermissionDenied, send(messages, BOB, channel))
    await refused("banned", PermissionDenied, conversations.add_members(AGENT, channel, ["bob"], 0))
    await moderation.lift(AGENT, kind="ban", user_id="bob", conversation_id=channel)
    await conversations.join(BOB, channel)
    assert await actions(db) == ["user.banned", "user.unbanned"]


async def test_a_tenant_wide_ban_reaches_every_conversation(
    db: Database,
    conversations: ConversationHandler,
    messages: MessageHandler,
    moderation: ModerationHandler,
) -> None:
    conv = await group(conversations)
    direct = (
        await create(conversations, BOB, kind=pb.CONVERSATION_KIND_DIRECT, members=["alice"])
    ).conversation.id
    await moderation.sanction(
        ADMIN, kind="ban", user_id="bob", conversation_id="", expires_at=None, reason="abuse"
    )
    assert (await kinds(db, conv))[-2:] == ["member_banned", "member_removed"]
    # A direct conversation keeps its two members; the ban refuses every write there.
    assert (await kinds(db, direct))[-1] == "member_banned"
    await refused("banned", PermissionDenied, send(messages, BOB, direct))
    await refused("banned", PermissionDenied, create(conversations, BOB, members=["carol"]))
    await refused("banned", PermissionDenied, create(conversations, CAROL, members=["bob"]))
    await moderation.lift(ADMIN, kind="ban", user_id="bob", conversation_id="")
    await send(messages, BOB, direct)
    assert await actions(db) == ["user.banned", "user.unbanned"]


async def test_a_tenant_wide_mute_tells_each_conversation(
    db: Database,
    conversations: ConversationHandler,
    messages: MessageHandler,
    moderation: ModerationHandler,
) -> None:
    first, second = await group(conversations), await group(conversations)
    await moderation.sanction(
        ADMIN, kind="mute", user_id="bob", conversation_id="", expires_at=None, reason=""
    )
    for conv in (first, second):
        assert (await kinds(db, conv))[-1] == "member_muted"
        await refused("muted", PermissionDenied, send(messages, BOB, conv))


async def test_who_may_sanction(
    conversations: ConversationHandler, moderation: ModerationHandler
) -> None:
    conv = await group(conversations)

    def mute(caller: object, target: str = "carol", conversation_id: str = conv) -> object:
        return moderation.sanction(
            caller,  # type: ignore[arg-type]
            kind="mute",
            user_id=target,
            conversation_id=conversation_id,
            expires_at=None,
            reason="",
        )

    await refused("forbidden", PermissionDenied, mute(BOB))
    await refused("forbidden", PermissionDenied, mute(BOB, conversation_id=""))
    await refused("forbidden", PermissionDenied, mute(ALICE, conversation_id=""))
    # Another tenant's conversation does not exist for this caller.
    await refused("conversation_not_found", NotFound, mute(ALICE_B))
    await refused("conversation_not_found", NotFound, mute(ADMIN_B))
    # An owner is moderated by an owner or a tenant admin only.
    await conversations.set_role(ALICE, conv, "carol", pb.MEMBER_ROLE_ADMIN)
    await refused("forbidden", PermissionDenied, mute(CAROL, target="alice"))
    await mute(ADMIN, target="alice")
    with pytest.raises(PermissionDenied):
        await moderation.sanctions(BOB, conversation_id=conv, user_id="", limit=0)
    with pytest.raises(PermissionDenied):
        await moderation.sanctions(ALICE, conversation_id="", user_id="", limit=0)
    assert await moderation.sanctions(ADMIN_B, conversation_id="", user_id="", limit=0) == []


async def test_bad_sanctions_are_clear_4xx(
    clock: FakeClock, conversations: ConversationHandler, moderation: ModerationHandler
) -> None:
    conv = await group(conversations)
    cases = [
        ("invalid_sanction_kind", {"kind": "kick"}),
        ("invalid_user_id", {"user_id": ""}),
        ("invalid_user_id", {"user_id": "x" * 129}),
        ("invalid_user_id", {"user_id": "confab-bot"}),
        ("cannot_sanction_self", {"user_id": "alice"}),
        ("invalid_expiry", {"expires_at": clock.now()}),
        ("reason_too_long", {"reason": "x" * 501}),
    ]
    for code, change in cases:
        args: dict[str, object] = {
            "kind": "mute",
            "user_id": "bob",
            "conversation_id": conv,
            "expires_at": None,
            "reason": "",
            **change,
        }
        await refused(code, InvalidArgument, moderation.sanction(ALICE, **args))  # type: ignore[arg-type]
    await refused(
        "sanction_not_found",
        NotFound,
        moderation.lift(ALICE, kind="ban", user_id="bob", conversation_id=conv),
    )


async def test_reports_and_the_queue(
    db: Database,
    conversations: ConversationHandler,
    messages: MessageHandler,
    moderation: ModerationHandler,
) -> None:
    conv = await group(conversations)
    bad = (await send(messages, BOB, conv, text="buy cheap pills")).message
    mine = (await send(messages, CAROL, conv)).message
    item = await moderation.report(CAROL, conversation_id=conv, message_id=bad.id, reason="spam")
    assert (item.entry.kind, item.entry.author_id, item.entry.status) == ("report", "bob", "open")
    await moderation.report(ALICE, conversation_id=conv, message_id=bad.id, reason="spam too")
    await refused(
        "already_reported",
        Conflict,
        moderation.report(CAROL, conversation_id=conv, message_id=bad.id, reason="again"),
    )
    await refused(
        "cannot_report_own",
        InvalidArgument,
        moderation.report(CAROL, conversation_id=conv, message_id=mine.id, reason="me"),
    )
    await refused(
        "invalid_reason",
        InvalidArgument,
        moderation.report(ALICE, conversation_id=conv, message_id=mine.id, reason="  "),
    )
    await refused(
        "message_not_found",
        NotFound,
        moderation.report(ALICE, conversation_id=conv, message_id="nope", reason="x"),
    )
    await refused(
        "conversation_not_found",
        NotFound,
        moderation.report(ALICE_B, conversation_id=conv, message_id=bad.id, reason="x"),
    )
    await refused(
        "forbidden",
        PermissionDenied,
        moderation.queue(ALICE, status="", kind="", limit=0, page_token=""),
    )
    await refused(
        "invalid_status",
        InvalidArgument,
        moderation.queue(ADMIN, status="maybe", kind="", limit=0, page_token=""),
    )
    assert (await moderation.queue(ADMIN_B, status="", kind="", limit=0, page_token=""))[0] == []
    first, token = await moderation.queue(ADMIN, status="", kind="", limit=1, page_token="")
    second, end = await moderation.queue(ADMIN, status="", kind="", limit=1, page_token=token)
    assert end == "" and len(first) == len(second) == 1
    assert first[0].message is not None and first[0].message.text == "buy cheap pills"
    await refused(
        "invalid_cursor",
        InvalidArgument,
        moderation.queue(ADMIN_B, status="", kind="", limit=1, page_token=token),
    )

    entry = first[0].entry.id
    done = await moderation.resolve(
        ADMIN, entry_id=entry, action="delete_message", expires_at=None, tenant_wide=False
    )
    assert done.entry.resolution == "delete_message" and done.message is not None
    assert done.message.deleted
    await refused(
        "already_resolved",
        Conflict,
        moderation.resolve(
            ADMIN, entry_id=entry, action="dismiss", expires_at=None, tenant_wide=False
        ),
    )
    await refused(
        "invalid_action",
        InvalidArgument,
        moderation.resolve(
            ADMIN, entry_id=second[0].entry.id, action="shout", expires_at=None, tenant_wide=False
        ),
    )
    await refused(
        "queue_entry_not_found",
        NotFound,
        moderation.resolve(
            ADMIN_B,
            entry_id=second[0].entry.id,
            action="dismiss",
            expires_at=None,
            tenant_wide=False,
        ),
    )
    await moderation.resolve(
        ADMIN, entry_id=second[0].entry.id, action="ban_author", expires_at=None, tenant_wide=True
    )
    # Removed from the group, which it no longer sees.
    await refused("conversation_not_found", NotFound, send(messages, BOB, conv))
    assert await actions(db) == [
        "moderation.resolved",
        "message.deleted_by_other",
        "user.banned",
        "moderation.resolved",
    ]
    resolved, _ = await moderation.queue(ADMIN, status="resolved", kind="", limit=0, page_token="")
    assert len(resolved) == 2


async def test_every_admin_action_leaves_one_audit_record(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = await group(conversations)
    await conversations.add_members(ALICE, conv, ["dave"], 0)
    await conversations.set_role(ALICE, conv, "bob", pb.MEMBER_ROLE_ADMIN)
    await conversations.remove_member(ALICE, conv, "dave")
    await conversations.update(ALICE, conv, title="New", description=None, topic=None)
    theirs = (await send(messages, CAROL, conv)).message
    mine = (await send(messages, ALICE, conv)).message
    await messages.delete(ALICE, conversation_id=conv, message_id=theirs.id)
    # Not administrative: deleting one's own message, leaving.
    await messages.delete(ALICE, conversation_id=conv, message_id=mine.id)
    await conversations.leave(CAROL, conv)
    await conversations.archive(ALICE, conv)
    await conversations.delete(ADMIN, conv)
    assert await actions(db) == [
        "member.added",
        "member.role_changed",
        "member.removed",
        "conversation.updated",
        "message.deleted_by_other",
        "conversation.archived",
        "conversation.deleted",
    ]
    role = await db.db["audit"].find_one({"action": "member.role_changed"})
    assert role is not None
    assert (role["before"], role["after"]) == ({"role": "member"}, {"role": "admin"})
    title = await db.db["audit"].find_one({"action": "conversation.updated"})
    assert title is not None and title["after"] == {"title": "New"}
    assert await actions(db, TENANT_B) == []
