"""docs/permissions.md, row by row, against the real handlers on a real MongoDB-wire server.

Every case is one cell of the matrix: a row (the action), the conversation kind it
acts on and the caller's role, with the outcome the doc promises: allowed, or the
exact error class and stable code. A caller who may not see a conversation gets
``NotFound('conversation_not_found')``, never a 403.

Callers act on a "world": a conversation of the row's kind in a tenant of its own,
whose members hold every conversation role. Worlds are shared between cases that
cannot change them (refusals, reads, benign writes) and built afresh for cases
that change membership, state or messages other cases rely on.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.clock import FakeClock
from confab_core.errors import (
    ConfabError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from confab_core.identity import (
    BOT_USER_ID,
    ROLE_AGENT,
    ROLE_MEMBER,
    ROLE_SERVICE,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
    Caller,
)
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.unit import UnitOfWork
from conversation.storage.db import Database

from .conftest import create, fresh_tenant, send, user

pytestmark = pytest.mark.asyncio(loop_scope="module")

KINDS = {
    "direct": pb.CONVERSATION_KIND_DIRECT,
    "group": pb.CONVERSATION_KIND_GROUP,
    "support": pb.CONVERSATION_KIND_SUPPORT,
    "assistant": pb.CONVERSATION_KIND_AI_ASSISTANT,
    "public": pb.CONVERSATION_KIND_PUBLIC_CHANNEL,
    "private": pb.CONVERSATION_KIND_PRIVATE_CHANNEL,
}

# Who acts. The first four hold that conversation role (their tenant role is
# `member`; the owner is an agent, who may create channels); `tadmin-member` is a
# tenant admin holding a plain membership ("if member" in the doc); `t.*` hold only
# a tenant role and no membership; `service` is the bot.
ROLES: dict[str, tuple[str, ...]] = {
    "owner": (ROLE_MEMBER, ROLE_AGENT),
    "admin": (ROLE_MEMBER,),
    "member": (ROLE_MEMBER,),
    "observer": (ROLE_MEMBER,),
    "tadmin-member": (ROLE_TENANT_ADMIN,),
    "t.member": (ROLE_MEMBER,),
    "t.agent": (ROLE_AGENT,),
    "t.tenant_admin": (ROLE_TENANT_ADMIN,),
    # Platform staff re-scoped into the tenant (only PlatformService builds such a
    # caller): no rights beyond a non-member's, so every cell mirrors t.member's.
    "t.super_admin": (ROLE_SUPER_ADMIN,),
    "service": (ROLE_SERVICE,),
}


def uid(who: str) -> str:
    return BOT_USER_ID if who == "service" else who.replace(".", "-")


# -- worlds ----------


@dataclass
class World:
    conversations: ConversationHandler
    messages: MessageHandler
    tenant: str
    kind: int = pb.CONVERSATION_KIND_UNSPECIFIED
    conv: str = ""
    # A top-level message by each member who could send one, by role key.
    msg: dict[str, str] = field(default_factory=dict)

    def caller(self, who: str) -> Caller:
        return user(uid(who), self.tenant, *ROLES[who])


def members_of(kind: str) -> list[str]:
    """The role keys holding a membership in a world of ``kind`` (owner first)."""
    if kind == "direct":
        return ["owner", "member"]
    if kind == "assistant":
        return ["owner", "service"]
    return ["owner", "admin", "member", "observer", "tadmin-member"]


async def build_world(
    conversations: ConversationHandler,
    messages: MessageHandler,
    kind: str,
    state: str,
    with_messages: bool,
) -> World:
    w = World(conversations, messages, fresh_tenant())
    if kind == "none":
        return w
    w.kind = KINDS[kind]
    owner = w.caller("owner")
    members = members_of(kind)
    others = [uid(m) for m in members[1:] if m != "service"]
    w.conv = (await create(conversations, owner, w.kind, others)).conversation.id
    if with_messages:
        for who in members:
            kind_ = pb.MESSAGE_KIND_BOT if who == "service" else pb.MESSAGE_KIND_TEXT
            sent = await send(messages, w.caller(who), w.conv, f"hello from {who}", kind=kind_)
            w.msg[who] = sent.message.id
    if "admin" in members:
        await conversations.set_role(owner, w.conv, "admin", pb.MEMBER_ROLE_ADMIN)
        await conversations.set_role(owner, w.conv, "observer", pb.MEMBER_ROLE_OBSERVER)
    if state == "archived":
        await conversations.archive(owner, w.conv)
    elif state == "deleted":
        await conversations.delete(w.caller("t.tenant_admin"), w.conv)
    return w


class Worlds:
    def __init__(self, conversations: ConversationHandler, messages: MessageHandler) -> None:
        self.conversations = conversations
        self.messages = messages
        self._shared: dict[tuple[str, str], World] = {}

    async def get(self, kind: str, state: str, *, fresh: bool, with_messages: bool) -> World:
        if fresh:
            return await build_world(self.conversations, self.messages, kind, state, with_messages)
        key = (kind, state)
        if key not in self._shared:
            self._shared[key] = await build_world(
                self.conversations, self.messages, kind, state, with_messages=True
            )
        return self._shared[key]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def worlds(shared_db: Database) -> Worlds:
    unit = UnitOfWork(shared_db, FakeClock(), asyncio.Event())
    return Worlds(ConversationHandler(unit), MessageHandler(unit))


# -- outcomes and cases ----------

Expect = tuple[type[ConfabError], str] | None
OK: Expect = None
NF: Expect = (NotFound, "conversation_not_found")
ARCHIVED: Expect = (FailedPrecondition, "conversation_archived")
LAST_OWNER: Expect = (FailedPrecondition, "last_owner")
BAD_KIND: Expect = (InvalidArgument, "invalid_message_kind")


def denied(code: str) -> Expect:
    return (PermissionDenied, code)


FORBIDDEN = denied("forbidden")
NOT_MEMBER = denied("not_a_member")

Act = Callable[[World, Caller], Awaitable[Any]]


@dataclass(frozen=True)
class Case:
    row: str
    kind: str
    who: str
    expect: Expect
    acts: tuple[tuple[str, Act], ...]
    state: str = "live"
    # Allowed cases of these rows change what other cases rely on: fresh world.
    mutating: bool = False
    with_messages: bool = False
    # Run by the owner before the caller acts (always on a fresh world).
    prep: Act | None = None


CASES: list[Any] = []


def cells(
    row: str,
    acts: Act | dict[str, Act],
    table: dict[str, dict[str, Expect]],
    *,
    state: str = "live",
    mutating: bool = False,
    with_messages: bool = False,
    prep: Act | None = None,
) -> None:
    """Adds one case per (kind, role) cell of ``table`` for a row of the doc."""
    named = tuple(acts.items()) if isinstance(acts, dict) else ((row, acts),)
    for kind, by_role in table.items():
        if "t.member" in by_role:
            by_role = {**by_role, "t.super_admin": by_role["t.member"]}
        for who, expect in by_role.items():
            case = Case(row, kind, who, expect, named, state, mutating, with_messages, prep)
            CASES.append(pytest.param(case, id=f"{row}-{kind}-{who}"))


@pytest.mark.parametrize("case", CASES)
async def test_permission_matrix(case: Case, worlds: Worlds, shared_db: Database) -> None:
    fresh = (case.mutating and case.expect is OK) or case.prep is not None
    w = await worlds.get(case.kind, case.state, fresh=fresh, with_messages=case.with_messages)
    if case.prep is not None:
        await case.prep(w, w.caller("owner"))
    caller = w.caller(case.who)
    for name, act in case.acts:
        if case.expect is None:
            await act(w, caller)
            continue
        cls, code = case.expect
        events_before = await shared_db.db["outbox"].count_documents({"tenant_id": w.tenant})
        with pytest.raises(ConfabError) as info:
            await act(w, caller)
        got = (type(info.value).__name__, info.value.code)
        assert got == (cls.__name__, code), f"{name}: {got}"
        # A refusal writes nothing.
        events_after = await shared_db.db["outbox"].count_documents({"tenant_id": w.tenant})
        assert events_after == events_before, name


# -- actions ----------


def newcomer() -> str:
    """Somebody in none of the tenant's conversations yet."""
    return f"new-{uuid.uuid4().hex[:6]}"


async def get(w: World, c: Caller) -> None:
    view = await w.conversations.get(c, w.conv)
    assert view.id == w.conv


async def list_members(w: World, c: Caller) -> None:
    rows = await w.conversations.list_members(c, w.conv)
    assert uid("owner") in {m.user_id for m, _ in rows}


async def page(w: World, c: Caller) -> None:
    await w.messages.page(c, conversation_id=w.conv, after_seq=0, before_seq=0, limit=10)
    await w.messages.page(c, conversation_id=w.conv, after_seq=0, before_seq=99, limit=10)


async def thread(w: World, c: Caller) -> None:
    root, _ = await w.messages.thread(
        c, conversation_id=w.conv, root_message_id=w.msg["owner"], after_seq=0, limit=10
    )
    assert root.id == w.msg["owner"]


async def search(w: World, c: Caller) -> None:
    found = await w.messages.search(c, query="hello", conversation_id=w.conv, limit=10)
    assert found


async def events(w: World, c: Caller) -> None:
    page_ = await w.messages.events(c, conversation_id=w.conv, after_event_seq=0, limit=10)
    assert page_.events


SEE = {"get": get, "list_members": list_members, "page": page}
READ = {"page": page, "thread": thread, "search": search, "events": events}


def create_kind(kind: str) -> Act:
    async def act(w: World, c: Caller) -> None:
        made = await create(w.conversations, c, KINDS[kind], ["friend"])
        assert made.created and made.conversation.my_role == pb.MEMBER_ROLE_OWNER
        rows = await w.conversations.list_members(c, made.conversation.id)
        ids = {m.user_id for m, _ in rows}
        if kind == "assistant":
            # The caller and the bot, nobody else.
            assert ids == {c.user_id, BOT_USER_ID}
        else:
            assert ids == {c.user_id, "friend"}
        if kind == "direct":
            # One per pair, from either side.
            again = await create(w.conversations, c, KINDS[kind], ["friend"])
            theirs = await create(
                w.conversations, user("friend", w.tenant), KINDS[kind], [c.user_id]
            )
            assert not again.created and not theirs.created
            assert again.conversation.id == theirs.conversation.id == made.conversation.id

    return act


async def browse(w: World, c: Caller) -> None:
    found = [v.id for v in await w.conversations.browse(c, "", 100)]
    public = w.kind == pb.CONVERSATION_KIND_PUBLIC_CHANNEL
    assert (w.conv in found) is public


async def join(w: World, c: Caller) -> None:
    view = await w.conversations.join(c, w.conv)
    assert view.my_role == pb.MEMBER_ROLE_MEMBER
    assert c.user_id in {m.user_id for m, _ in await w.conversations.list_members(c, w.conv)}


async def leave(w: World, c: Caller) -> None:
    await w.conversations.leave(c, w.conv)
    rows = await w.conversations.list_members(w.caller("owner"), w.conv)
    assert c.user_id not in {m.user_id for m, _ in rows}


async def leave_alone(w: World, c: Caller) -> None:
    # The last owner may leave when nobody else is left.
    conv = (await create(w.conversations, c, pb.CONVERSATION_KIND_GROUP, [])).conversation.id
    await w.conversations.leave(c, conv)
    assert await w.conversations.list_members(w.caller("t.tenant_admin"), conv) == []


async def update(w: World, c: Caller) -> None:
    view = await w.conversations.update(
        c, w.conv, title="Renamed", description="about", topic="today"
    )
    assert (view.title, view.description, view.topic) == ("Renamed", "about", "today")


async def archive(w: World, c: Caller) -> None:
    assert (await w.conversations.archive(c, w.conv)).archived


async def delete(w: World, c: Caller) -> None:
    await w.conversations.delete(c, w.conv)
    for who in ("owner", "t.tenant_admin", "service"):
        with pytest.raises(NotFound):
            await w.conversations.get(w.caller(who), w.conv)


def add_as(role: int) -> Act:
    async def act(w: World, c: Caller) -> None:
        new = newcomer()
        added = await w.conversations.add_members(c, w.conv, [new], role)
        assert [(m.user_id, m.role) for m in added] == [(new, role)]

    return act


def remove(target: str) -> Act:
    async def act(w: World, c: Caller) -> None:
        await w.conversations.remove_member(c, w.conv, uid(target))
        rows = await w.conversations.list_members(w.caller("owner"), w.conv)
        assert uid(target) not in {m.user_id for m, _ in rows}

    return act


def promote(target: str, role: int) -> Act:
    async def act(w: World, owner: Caller) -> None:
        await w.conversations.set_role(owner, w.conv, uid(target), role)

    return act


def set_role(target: str, role: int) -> Act:
    async def act(w: World, c: Caller) -> None:
        doc = await w.conversations.set_role(c, w.conv, uid(target), role)
        assert doc.role == role

    return act


def send_kind(kind: int) -> Act:
    async def act(w: World, c: Caller) -> None:
        file = None
        if kind == pb.MESSAGE_KIND_FILE:
            file = {
                "url": "https://f.example/a.pdf",
                "name": "a.pdf",
                "content_type": "",
                "size_bytes": 1,
            }
        sent = await send(w.messages, c, w.conv, "a message", kind=kind, file=file)
        assert sent.created and sent.message.kind == kind

    return act


def edit(author: str) -> Act:
    async def act(w: World, c: Caller) -> None:
        doc = await w.messages.edit(
            c, conversation_id=w.conv, message_id=w.msg[author], text="edited"
        )
        assert doc.text == "edited"

    return act


def delete_message(author: str) -> Act:
    async def act(w: World, c: Caller) -> None:
        doc = await w.messages.delete(c, conversation_id=w.conv, message_id=w.msg[author])
        assert doc.deleted

    return act


async def react(w: World, c: Caller) -> None:
    await w.messages.react(c, conversation_id=w.conv, message_id=w.msg["owner"], emoji="👍")


async def mark_read(w: World, c: Caller) -> None:
    last, unread = await w.messages.mark_read(c, conversation_id=w.conv, seq=1)
    assert last >= 1 and unread >= 0


# -- Conversations ----------

GROUPISH = ("group", "support", "private")

# create: channels need an agent or an admin.
for _kind in KINDS:
    _channel = _kind in ("public", "private")
    cells(
        f"create-{_kind}",
        create_kind(_kind),
        {
            "none": {
                "t.member": denied("forbidden_kind") if _channel else OK,
                "t.agent": OK,
                "t.tenant_admin": OK,
            }
        },
    )

# see (get, list members, read messages): members, anyone for public channels,
# tenant admins for everything but others' direct and ai_assistant.
_see: dict[str, dict[str, Expect]] = {
    "direct": {"owner": OK, "member": OK},
    "assistant": {"owner": OK},
}
for _kind in (*GROUPISH, "public"):
    _see[_kind] = {"owner": OK, "admin": OK, "member": OK, "observer": OK}
for _kind, _by_role in _see.items():
    visible_to_all = _kind == "public"
    private = _kind in ("direct", "assistant")
    _by_role.update(
        {
            "t.member": OK if visible_to_all else NF,
            # Agents work every support conversation of their tenant.
            "t.agent": OK if visible_to_all or _kind == "support" else NF,
            "t.tenant_admin": NF if private else OK,
            # The bot reads where it acts (and is a member of ai_assistant ones).
            "service": OK,
        }
    )
cells("see", SEE, _see)

# browse: anyone lists the tenant's public channels, and only those.
cells(
    "browse",
    browse,
    {
        kind: {"t.member": OK, "t.agent": OK, "t.tenant_admin": OK}
        for kind in ("public", "private", "group")
    },
)

# join: public channels for anyone, any channel for tenant admins; others not_joinable.
_not_joinable = denied("not_joinable")
cells(
    "join",
    join,
    {
        "public": {"t.member": OK, "t.agent": OK, "t.tenant_admin": OK},
        "private": {"t.member": NF, "t.agent": NF, "t.tenant_admin": OK},
        "group": {
            "t.member": NF,
            "t.tenant_admin": _not_joinable,
            "service": _not_joinable,
        },
        "support": {"t.agent": _not_joinable, "t.tenant_admin": _not_joinable},
        # Others' direct and assistant conversations are not even visible to admins.
        "direct": {"t.member": NF, "t.tenant_admin": NF, "service": _not_joinable},
        # (The bot is a member of every assistant conversation: joining is a no-op.)
        "assistant": {"t.tenant_admin": NF},
    },
    mutating=True,
)

# leave: anyone; the last owner hands over first; direct and ai_assistant cannot be left.
cells(
    "leave",
    leave,
    {
        "group": {
            "owner": LAST_OWNER,
            "admin": OK,
            "member": OK,
            "observer": OK,
            "tadmin-member": OK,
            "t.member": NF,
            "t.tenant_admin": NOT_MEMBER,
        },
        "public": {"member": OK, "t.member": NOT_MEMBER},
        "direct": {"owner": denied("cannot_leave"), "member": denied("cannot_leave")},
        "assistant": {"owner": denied("cannot_leave")},
    },
    mutating=True,
)
cells("leave-alone", leave_alone, {"none": {"t.member": OK, "t.tenant_admin": OK}})

# update title, description, topic: conv admins and tenant admins; direct: not_editable.
cells(
    "update",
    update,
    {
        "group": {
            "owner": OK,
            "admin": OK,
            "member": FORBIDDEN,
            "observer": FORBIDDEN,
            "tadmin-member": OK,
            "t.member": NF,
            "t.agent": NF,
            "t.tenant_admin": OK,
        },
        "public": {"member": FORBIDDEN, "t.member": FORBIDDEN, "t.tenant_admin": OK},
        "private": {"admin": OK},
        "direct": {
            "owner": denied("not_editable"),
            "member": denied("not_editable"),
            "t.tenant_admin": NF,
        },
        "assistant": {"owner": OK, "t.tenant_admin": NF},
    },
)

# archive: conv admins and tenant admins.
cells(
    "archive",
    archive,
    {
        "group": {
            "owner": OK,
            "admin": OK,
            "member": FORBIDDEN,
            "observer": FORBIDDEN,
            "t.member": NF,
            "t.tenant_admin": OK,
        },
        "public": {"t.member": FORBIDDEN},
        "direct": {"owner": OK, "member": FORBIDDEN, "t.tenant_admin": NF},
    },
    mutating=True,
)

# archived: sends, edits, reactions, member changes refused; reads and read markers work.
_archived_writes: dict[str, tuple[str, Act]] = {
    "send": ("member", send_kind(pb.MESSAGE_KIND_TEXT)),
    "send-file": ("member", send_kind(pb.MESSAGE_KIND_FILE)),
    "edit": ("member", edit("member")),
    "react": ("member", react),
    "delete-message": ("owner", delete_message("member")),
    "update": ("owner", update),
    "add-members": ("owner", add_as(pb.MEMBER_ROLE_MEMBER)),
    "remove-member": ("owner", remove("member")),
    "set-role": ("owner", set_role("member", pb.MEMBER_ROLE_ADMIN)),
    "leave": ("member", leave),
    "remove-self": ("member", remove("member")),
}
for _name, (_who, _act) in _archived_writes.items():
    cells(f"archived-{_name}", _act, {"group": {_who: ARCHIVED}}, state="archived")
cells("archived-join", join, {"public": {"t.member": ARCHIVED}}, state="archived")
cells(
    "archived-reads",
    {**SEE, **READ},
    {"group": {"member": OK, "observer": OK, "owner": OK, "t.tenant_admin": OK}},
    state="archived",
)
cells(
    "archived-mark-read",
    mark_read,
    {"group": {"member": OK, "observer": OK, "t.tenant_admin": NOT_MEMBER}},
    state="archived",
)
cells("archived-archive-again", archive, {"group": {"owner": OK}}, state="archived")

# delete: tenant admins only; gone for everyone afterwards.
cells(
    "delete",
    delete,
    {
        "group": {
            "owner": FORBIDDEN,
            "admin": FORBIDDEN,
            "member": FORBIDDEN,
            "observer": FORBIDDEN,
            "t.member": NF,
            "t.agent": NF,
            "t.tenant_admin": OK,
            "service": FORBIDDEN,
        },
        "public": {"t.member": FORBIDDEN, "t.agent": FORBIDDEN, "t.tenant_admin": OK},
        "direct": {"owner": FORBIDDEN, "t.tenant_admin": NF},
    },
    mutating=True,
)


async def _send_text(w: World, c: Caller) -> None:
    await send(w.messages, c, w.conv, "still there?")


cells(
    "deleted",
    {
        **SEE,
        "events": events,
        "send": _send_text,
        "mark_read": mark_read,
        "join": join,
        "update": update,
        "archive": archive,
        "delete": delete,
    },
    {
        kind: {
            "owner": NF,
            "admin": NF,
            "member": NF,
            "observer": NF,
            "t.member": NF,
            "t.tenant_admin": NF,
            "service": NF,
        }
        for kind in ("group", "public")
    },
    state="deleted",
)

# add members: conv admins; in a public channel any member (not observers);
# tenant admins; never in direct and ai_assistant conversations.
_not_editable = denied("not_editable")
cells(
    "add-members",
    add_as(pb.MEMBER_ROLE_MEMBER),
    {
        "group": {
            "owner": OK,
            "admin": OK,
            "member": FORBIDDEN,
            "observer": FORBIDDEN,
            "tadmin-member": OK,
            "t.member": NF,
            "t.tenant_admin": OK,
        },
        "public": {
            "member": OK,
            "observer": FORBIDDEN,
            "t.member": FORBIDDEN,
            "t.agent": FORBIDDEN,
            "t.tenant_admin": OK,
        },
        "private": {"member": FORBIDDEN, "t.member": NF, "t.tenant_admin": OK},
        "direct": {"owner": _not_editable, "member": _not_editable, "t.tenant_admin": NF},
        "assistant": {"owner": _not_editable, "service": _not_editable},
    },
)
# Granting admin or owner at add time needs an owner (or a tenant admin).
cells(
    "add-as-admin",
    add_as(pb.MEMBER_ROLE_ADMIN),
    {
        "group": {"owner": OK, "admin": FORBIDDEN, "t.tenant_admin": OK},
        "public": {"member": FORBIDDEN, "owner": OK},
    },
)
cells(
    "add-as-owner",
    add_as(pb.MEMBER_ROLE_OWNER),
    {"group": {"owner": OK, "admin": FORBIDDEN}},
    mutating=True,
)

# remove a member: conv admins (an owner only by an owner), tenant admins;
# removing oneself is leaving.
cells(
    "remove-member",
    remove("member"),
    {
        "group": {
            "owner": OK,
            "admin": OK,
            "observer": FORBIDDEN,
            "tadmin-member": OK,
            "t.member": NF,
            "t.tenant_admin": OK,
        },
        "public": {"t.member": FORBIDDEN, "t.tenant_admin": OK},
        "direct": {"owner": _not_editable, "t.tenant_admin": NF},
    },
    mutating=True,
)
cells(
    "remove-observer",
    remove("observer"),
    {"group": {"member": FORBIDDEN, "admin": OK}},
    mutating=True,
)
cells(
    "remove-admin",
    remove("admin"),
    {"group": {"owner": OK, "member": FORBIDDEN, "t.tenant_admin": OK}},
    mutating=True,
)
cells(
    "remove-other-admin",
    remove("tadmin-member"),
    {"group": {"admin": OK}},
    prep=promote("tadmin-member", pb.MEMBER_ROLE_ADMIN),
)
cells(
    "remove-owner",
    remove("owner"),
    {
        "group": {
            "admin": FORBIDDEN,
            "member": FORBIDDEN,
            # Even a tenant admin cannot leave a conversation without an owner.
            "t.tenant_admin": LAST_OWNER,
        }
    },
    mutating=True,
)
cells(
    "remove-co-owner",
    remove("tadmin-member"),
    {"group": {"owner": OK, "admin": FORBIDDEN, "t.tenant_admin": OK}},
    prep=promote("tadmin-member", pb.MEMBER_ROLE_OWNER),
)
cells(
    "remove-self",
    remove("member"),
    {"group": {"member": OK}, "direct": {"member": denied("cannot_leave")}},
    mutating=True,
)

# change a member's role: owners and tenant admins; only they make owners.
cells(
    "set-role-admin",
    set_role("member", pb.MEMBER_ROLE_ADMIN),
    {
        "group": {
            "owner": OK,
            "admin": FORBIDDEN,
            "member": FORBIDDEN,
            "observer": FORBIDDEN,
            "t.member": NF,
            "t.tenant_admin": OK,
        },
        "public": {"t.member": FORBIDDEN, "t.agent": FORBIDDEN},
        "direct": {"owner": _not_editable},
    },
    mutating=True,
)
cells(
    "set-role-owner",
    set_role("member", pb.MEMBER_ROLE_OWNER),
    {"group": {"owner": OK, "admin": FORBIDDEN, "t.tenant_admin": OK}},
    mutating=True,
)
cells(
    "set-role-observer",
    set_role("admin", pb.MEMBER_ROLE_OBSERVER),
    {"group": {"owner": OK, "admin": FORBIDDEN}},
    mutating=True,
)
cells(
    "set-role-last-owner",
    set_role("owner", pb.MEMBER_ROLE_ADMIN),
    {"group": {"owner": LAST_OWNER, "t.tenant_admin": LAST_OWNER}},
    mutating=True,
)

# -- Messages ----------

_message_roles_read: dict[str, Expect] = {
    "observer": OK,
    "member": OK,
    "admin": OK,
    "owner": OK,
    "t.tenant_admin": OK,
    "service": OK,
    "t.member": NF,
}
cells(
    "read",
    READ,
    {
        "group": _message_roles_read,
        "public": {"t.member": OK, "t.agent": OK},
        "assistant": {"owner": OK, "service": OK, "t.tenant_admin": NF},
    },
)

_observer_cannot_send = denied("observer_cannot_send")
for _name, _kind in (("text", pb.MESSAGE_KIND_TEXT), ("file", pb.MESSAGE_KIND_FILE)):
    cells(
        f"send-{_name}",
        send_kind(_kind),
        {
            "group": {
                "observer": _observer_cannot_send,
                "member": OK,
                "admin": OK,
                "owner": OK,
                "tadmin-member": OK,
                "t.tenant_admin": NOT_MEMBER,
                "t.member": NF,
            },
            "public": {"t.member": NOT_MEMBER, "member": OK},
            "direct": {"member": OK, "t.tenant_admin": NF},
            # Agents and admins answer in any support conversation of their tenant.
            "support": {
                "t.agent": OK,
                "t.tenant_admin": OK,
                "t.member": NF,
            },
        },
    )
for _name, _kind in (("bot", pb.MESSAGE_KIND_BOT), ("system", pb.MESSAGE_KIND_SYSTEM)):
    cells(
        f"send-{_name}",
        send_kind(_kind),
        {
            "group": {
                "observer": BAD_KIND,
                "member": BAD_KIND,
                "admin": BAD_KIND,
                "owner": BAD_KIND,
                "tadmin-member": BAD_KIND,
                "t.tenant_admin": BAD_KIND,
                # The service sends where it is a member (see the report on the doc).
                "service": NOT_MEMBER,
            },
            "assistant": {"owner": BAD_KIND, "service": OK},
        },
    )

# edit: own messages only, whoever you are.
_not_author = denied("not_the_author")
for _author in ("owner", "admin", "member", "observer", "tadmin-member"):
    cells(f"edit-own-{_author}", edit(_author), {"group": {_author: OK}})
cells("edit-own-bot", edit("service"), {"assistant": {"service": OK}})
cells(
    "edit-others",
    edit("member"),
    {
        "group": {
            "owner": _not_author,
            "admin": _not_author,
            "observer": _not_author,
            "tadmin-member": _not_author,
            "t.tenant_admin": _not_author,
            "t.member": NF,
        },
        "public": {"t.member": _not_author},
    },
)
cells("edit-others-bot", edit("owner"), {"assistant": {"service": _not_author}})

# delete (tombstone): own for anyone; any for conv admins and tenant admins.
for _author in ("observer", "member", "admin", "owner"):
    cells(
        f"delete-message-own-{_author}",
        delete_message(_author),
        {"group": {_author: OK}},
        mutating=True,
        with_messages=True,
    )
cells(
    "delete-message-own-bot",
    delete_message("service"),
    {"assistant": {"service": OK}},
    mutating=True,
    with_messages=True,
)
cells(
    "delete-message-others",
    delete_message("member"),
    {
        "group": {
            "observer": FORBIDDEN,
            "admin": OK,
            "owner": OK,
            "tadmin-member": OK,
            "t.tenant_admin": OK,
            "t.member": NF,
        },
        "public": {"t.member": FORBIDDEN, "t.tenant_admin": OK},
    },
    mutating=True,
    with_messages=True,
)
cells(
    "delete-message-owners",
    delete_message("owner"),
    {"group": {"member": FORBIDDEN}, "assistant": {"service": FORBIDDEN}},
    mutating=True,
    with_messages=True,
)

# react: not observers; tenant admins if members.
cells(
    "react",
    react,
    {
        "group": {
            "observer": _observer_cannot_send,
            "member": OK,
            "admin": OK,
            "owner": OK,
            "tadmin-member": OK,
            "t.tenant_admin": NOT_MEMBER,
            "t.member": NF,
        },
        "public": {"t.member": NOT_MEMBER},
        "support": {"t.agent": OK, "t.tenant_admin": OK, "t.member": NF},
    },
)

# mark read: every member, observers too; tenant admins if members.
cells(
    "mark-read",
    mark_read,
    {
        "group": {
            "observer": OK,
            "member": OK,
            "admin": OK,
            "owner": OK,
            "tadmin-member": OK,
            "t.tenant_admin": NOT_MEMBER,
            "t.member": NF,
        },
        "public": {"t.member": NOT_MEMBER},
        "direct": {"owner": OK, "member": OK},
    },
)


async def test_every_role_and_kind_is_exercised() -> None:
    """The table reaches every caller role and every conversation kind."""
    cases = [p.values[0] for p in CASES]
    assert {c.who for c in cases} == set(ROLES)
    assert {c.kind for c in cases} - {"none"} == set(KINDS)
