"""Per-tenant role permissions (docs/permissions.md#per-tenant-role-permissions),
row by row: each of the eight permissions for each tenant role, first with the
default matrix, then with the permission flipped (removed where the role holds it,
granted where it does not) in the tenant's settings document. Real handlers on a
real MongoDB-wire server; every case takes a tenant of its own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.clock import FakeClock
from confab_core.errors import ConfabError, NotFound, PermissionDenied
from confab_core.identity import (
    ROLE_AGENT,
    ROLE_MEMBER,
    ROLE_SERVICE,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
    Caller,
)
from conversation.handlers import rolematrix as rm
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.membership import MembershipHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.moderation import ModerationHandler
from conversation.handlers.rolecache import MATRIX_CACHE_SECONDS
from conversation.handlers.unit import UnitOfWork
from conversation.storage.db import Database
from conversation.storage.role_permissions import TENANT_SETTINGS_COLLECTION

from .conftest import create, fresh_tenant, send, user

pytestmark = pytest.mark.asyncio(loop_scope="module")

ATTACHMENT = {
    "url": "https://files.example/a.pdf",
    "name": "a.pdf",
    "content_type": "application/pdf",
    "size_bytes": 10,
}


@dataclass
class Env:
    db: Database
    clock: FakeClock
    unit: UnitOfWork
    conversations: ConversationHandler
    messages: MessageHandler
    moderation: ModerationHandler


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(shared_db: Database) -> Env:
    clock = FakeClock()
    unit = UnitOfWork(shared_db, clock, asyncio.Event())
    return Env(
        shared_db,
        clock,
        unit,
        ConversationHandler(unit),
        MessageHandler(unit),
        ModerationHandler(unit),
    )


async def configure(env: Env, tenant: str, overrides: dict[str, list[str]]) -> None:
    """What the settings handler stores, then what its TenantSettingsChanged
    event makes every replica do."""
    await env.db.db[TENANT_SETTINGS_COLLECTION].update_one(
        {"tenant_id": tenant},
        {"$set": {"tenant_id": tenant, "role_permissions": overrides, "version": 1}},
        upsert=True,
    )
    env.unit.roles.invalidate(tenant)


def boss(tenant: str) -> Caller:
    return user("boss", tenant, ROLE_TENANT_ADMIN)


def bob(tenant: str) -> Caller:
    return user("bob", tenant, ROLE_MEMBER)


# -- probes: set up with the default matrix, then act as the role under test ----

Probe = Callable[[Env, str, Caller], Awaitable[Callable[[], Awaitable[object]]]]


async def _group_with_actor(env: Env, tenant: str, actor: Caller) -> str:
    created = await create(env.conversations, boss(tenant), members=[actor.user_id, "bob"])
    return created.conversation.id


async def access_channels(env: Env, tenant: str, actor: Caller) -> Callable[[], Awaitable[object]]:
    conv = (
        await create(env.conversations, boss(tenant), pb.CONVERSATION_KIND_PUBLIC_CHANNEL)
    ).conversation.id

    async def act() -> object:
        return await env.conversations.join(actor, conv)

    return act


async def create_channels(env: Env, tenant: str, actor: Caller) -> Callable[[], Awaitable[object]]:
    async def act() -> object:
        return await create(env.conversations, actor, pb.CONVERSATION_KIND_PUBLIC_CHANNEL)

    return act


async def manage_channels(env: Env, tenant: str, actor: Caller) -> Callable[[], Awaitable[object]]:
    # A plain member: what only the conversation's admins, or the permission, allow.
    conv = await _group_with_actor(env, tenant, actor)

    async def act() -> object:
        return await env.conversations.update(
            actor, conv, title="renamed", description=None, topic=None
        )

    return act


async def delete_messages(env: Env, tenant: str, actor: Caller) -> Callable[[], Awaitable[object]]:
    conv = await _group_with_actor(env, tenant, actor)
    theirs = (await send(env.messages, bob(tenant), conv, "bob's")).message.id

    async def act() -> object:
        return await env.messages.delete(actor, conversation_id=conv, message_id=theirs)

    return act


async def moderate_channels(
    env: Env, tenant: str, actor: Caller
) -> Callable[[], Awaitable[object]]:
    conv = await _group_with_actor(env, tenant, actor)

    async def act() -> object:
        return await env.moderation.sanction(
            actor, kind="mute", user_id="bob", conversation_id=conv, expires_at=None, reason=""
        )

    return act


async def access_private(env: Env, tenant: str, actor: Caller) -> Callable[[], Awaitable[object]]:
    # Its member, in a private channel: the permission decides whether it may be there.
    conv = (
        await create(
            env.conversations, boss(tenant), pb.CONVERSATION_KIND_PRIVATE_CHANNEL, [actor.user_id]
        )
    ).conversation.id

    async def act() -> object:
        return await env.conversations.get(actor, conv)

    return act


async def send_files(env: Env, tenant: str, actor: Caller) -> Callable[[], Awaitable[object]]:
    conv = await _group_with_actor(env, tenant, actor)

    async def act() -> object:
        return await send(
            env.messages, actor, conv, text="", kind=pb.MESSAGE_KIND_FILE, file=ATTACHMENT
        )

    return act


async def create_direct(env: Env, tenant: str, actor: Caller) -> Callable[[], Awaitable[object]]:
    async def act() -> object:
        return await create(env.conversations, actor, pb.CONVERSATION_KIND_DIRECT, ["bob"])

    return act


# Each permission: its probe and the refusal a caller without it gets.
ROWS: dict[str, tuple[Probe, type[ConfabError], str]] = {
    rm.ACCESS_CHANNELS: (access_channels, NotFound, "conversation_not_found"),
    rm.CREATE_CHANNELS: (create_channels, PermissionDenied, "forbidden_kind"),
    rm.MANAGE_CHANNELS: (manage_channels, PermissionDenied, "forbidden"),
    rm.DELETE_MESSAGES: (delete_messages, PermissionDenied, "forbidden"),
    rm.MODERATE_CHANNELS: (moderate_channels, PermissionDenied, "forbidden"),
    rm.ACCESS_PRIVATE: (access_private, NotFound, "conversation_not_found"),
    rm.SEND_FILES: (send_files, PermissionDenied, "forbidden"),
    rm.CREATE_DIRECT: (create_direct, PermissionDenied, "forbidden_kind"),
}

# The default matrix spelled out, as docs/permissions.md's table has it: a test
# of DEFAULT_MATRIX, not a copy of it.
DEFAULTS: dict[str, set[str]] = {
    rm.ACCESS_CHANNELS: {ROLE_MEMBER, ROLE_AGENT, ROLE_TENANT_ADMIN},
    rm.CREATE_CHANNELS: {ROLE_AGENT, ROLE_TENANT_ADMIN},
    rm.MANAGE_CHANNELS: {ROLE_TENANT_ADMIN},
    rm.DELETE_MESSAGES: {ROLE_TENANT_ADMIN},
    rm.MODERATE_CHANNELS: {ROLE_TENANT_ADMIN},
    rm.ACCESS_PRIVATE: {ROLE_MEMBER, ROLE_AGENT, ROLE_TENANT_ADMIN},
    rm.SEND_FILES: {ROLE_MEMBER, ROLE_AGENT, ROLE_TENANT_ADMIN},
    rm.CREATE_DIRECT: {ROLE_MEMBER, ROLE_AGENT, ROLE_TENANT_ADMIN},
}

CELLS = [
    pytest.param(permission, role, flipped, id=f"{permission}-{role}-{mode}")
    for permission in rm.PERMISSIONS
    for role in rm.ROLES
    for flipped, mode in ((False, "default"), (True, "flipped"))
]


async def expect(
    allowed: bool,
    act: Callable[[], Awaitable[object]],
    refusal: tuple[type[ConfabError], str],
) -> None:
    if allowed:
        await act()
        return
    with pytest.raises(ConfabError) as info:
        await act()
    assert (type(info.value), info.value.code) == refusal


@pytest.mark.parametrize(("permission", "role", "flipped"), CELLS)
async def test_role_permission(env: Env, permission: str, role: str, flipped: bool) -> None:
    tenant = fresh_tenant()
    actor = user(f"actor-{uuid.uuid4().hex[:6]}", tenant, role)
    probe, error, code = ROWS[permission]
    act = await probe(env, tenant, actor)
    holds = role in DEFAULTS[permission]
    if flipped:
        await configure(env, tenant, {role: sorted(rm.DEFAULT_MATRIX[role] ^ {permission})})
        holds = not holds
    await expect(holds, act, (error, code))


async def test_own_messages_stay_deletable_without_delete_messages(env: Env) -> None:
    tenant = fresh_tenant()
    actor = user("actor", tenant, ROLE_TENANT_ADMIN)
    conv = await _group_with_actor(env, tenant, actor)
    mine = (await send(env.messages, actor, conv, "mine")).message.id
    await configure(
        env, tenant, {ROLE_TENANT_ADMIN: sorted(set(rm.PERMISSIONS) - {rm.DELETE_MESSAGES})}
    )
    deleted = await env.messages.delete(actor, conversation_id=conv, message_id=mine)
    assert deleted.deleted


async def test_a_conversations_own_admins_keep_their_rights(env: Env) -> None:
    """The reaching permissions add to a conversation's owners and admins; they
    never take away what the conversation itself grants."""
    tenant = fresh_tenant()
    owner = user("owner", tenant, ROLE_MEMBER)
    conv = (await create(env.conversations, owner, members=["bob"])).conversation.id
    theirs = (await send(env.messages, bob(tenant), conv, "bob's")).message.id
    assert (
        not {rm.MANAGE_CHANNELS, rm.DELETE_MESSAGES, rm.MODERATE_CHANNELS}
        & (rm.DEFAULT_MATRIX[ROLE_MEMBER])
    )
    await env.conversations.update(owner, conv, title="mine", description=None, topic=None)
    await env.messages.delete(owner, conversation_id=conv, message_id=theirs)
    await env.moderation.sanction(
        owner, kind="mute", user_id="bob", conversation_id=conv, expires_at=None, reason=""
    )


async def test_closed_kinds_leave_every_list(env: Env) -> None:
    """Without chat.access_channels / chat.access_private a member's own channels
    and groups leave its conversation list, its ids, browse and search, and
    typing checks (MembershipService) see no such conversation."""
    tenant = fresh_tenant()
    actor = user("actor", tenant, ROLE_MEMBER)
    public = (
        await create(
            env.conversations, boss(tenant), pb.CONVERSATION_KIND_PUBLIC_CHANNEL, [actor.user_id]
        )
    ).conversation.id
    private = (
        await create(
            env.conversations, boss(tenant), pb.CONVERSATION_KIND_PRIVATE_CHANNEL, [actor.user_id]
        )
    ).conversation.id
    direct = (
        await create(env.conversations, actor, pb.CONVERSATION_KIND_DIRECT, ["bob"])
    ).conversation.id
    for conv in (public, private, direct):
        await send(env.messages, boss(tenant) if conv != direct else actor, conv, "findme")
    listed = await env.conversations.list_for_caller(actor, 0)
    assert {c.id for c in listed.conversations} == {public, private, direct}

    await configure(env, tenant, {ROLE_MEMBER: [rm.SEND_FILES, rm.CREATE_DIRECT]})
    listed = await env.conversations.list_for_caller(actor, 0)
    assert [c.id for c in listed.conversations] == [direct]
    assert await env.conversations.list_ids(actor, 0) == [direct]
    assert await env.conversations.browse(actor, "", 0) == []
    found = await env.messages.search(actor, query="findme", conversation_id="", limit=0)
    assert {m.conversation_id for m in found} == {direct}
    membership = MembershipHandler(env.db, env.unit.roles)
    for conv in (public, private):
        with pytest.raises(NotFound):
            await membership.check_member(actor, conv)
        with pytest.raises(NotFound):
            await send(env.messages, actor, conv)
    await membership.check_member(actor, direct)
    # Groups too: neither created nor seen.
    with pytest.raises(PermissionDenied) as refused:
        await create(env.conversations, actor, members=["bob"])
    assert refused.value.code == "forbidden_kind"


async def test_another_tenants_matrix_never_applies(env: Env) -> None:
    closed, other = fresh_tenant(), fresh_tenant()
    channels = {}
    for tenant in (closed, other):
        channels[tenant] = (
            await create(env.conversations, boss(tenant), pb.CONVERSATION_KIND_PUBLIC_CHANNEL)
        ).conversation.id
    # The same user id and role in both tenants; only one tenant closes channels.
    await configure(env, closed, {ROLE_MEMBER: [], ROLE_AGENT: [], ROLE_TENANT_ADMIN: []})
    with pytest.raises(NotFound):
        await env.conversations.get(user("carol", closed), channels[closed])
    await env.conversations.join(user("carol", other), channels[other])
    await send(env.messages, user("carol", other), channels[other])
    await create(env.conversations, user("carol", other), pb.CONVERSATION_KIND_DIRECT, ["bob"])
    await create(env.conversations, user("carol", other), pb.CONVERSATION_KIND_GROUP, ["bob"])


async def test_a_change_takes_effect_within_the_cache_age_without_an_event(env: Env) -> None:
    tenant = fresh_tenant()
    actor = user("actor", tenant, ROLE_MEMBER)
    act = await create_direct(env, tenant, actor)
    await act()
    # Stored, but no TenantSettingsChanged event reaches this process.
    await env.db.db[TENANT_SETTINGS_COLLECTION].update_one(
        {"tenant_id": tenant},
        {"$set": {"role_permissions": {ROLE_MEMBER: [rm.ACCESS_PRIVATE]}}},
        upsert=True,
    )
    await act()  # still the cached matrix
    assert MATRIX_CACHE_SECONDS < 1.0
    env.clock.advance(1.0)
    with pytest.raises(PermissionDenied):
        await act()


@pytest.mark.parametrize("role", [ROLE_SERVICE, ROLE_SUPER_ADMIN])
async def test_services_and_platform_staff_keep_their_rights(env: Env, role: str) -> None:
    tenant = fresh_tenant()
    channel = (
        await create(env.conversations, boss(tenant), pb.CONVERSATION_KIND_PUBLIC_CHANNEL)
    ).conversation.id
    await configure(env, tenant, {r: [] for r in rm.ROLES})
    caller = user("confab-system" if role == ROLE_SERVICE else "staff", tenant, role)
    view = await env.conversations.get(caller, channel)
    assert view.id == channel
