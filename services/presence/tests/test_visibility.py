"""GetPresence follows docs/presence.md: members see the people they share a
conversation with (and themselves), staff see the tenant, and a hidden user
reads exactly like one that does not exist."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import pytest_asyncio

from confab.conversation.v1 import conversation_pb2 as cpb
from confab.conversation.v1 import conversation_pb2_grpc as cgrpc
from confab.presence.v1 import presence_pb2 as pb
from confab_core.clock import FakeClock
from confab_core.grpcx.client import channel
from confab_core.identity import ROLE_AGENT, ROLE_TENANT_ADMIN, Caller, acting_as
from confab_core.servicetoken import CONVERSATION
from presence.events import EventQueue
from presence.handlers.presence import PresenceHandler
from presence.storage.presence import PresenceDb

ALICE = Caller(tenant_id="t1", user_id="alice")
BOB = Caller(tenant_id="t1", user_id="bob")
CAROL = Caller(tenant_id="t1", user_id="carol")
AGENT = Caller(tenant_id="t1", user_id="agent", roles=frozenset({ROLE_AGENT}))
ADMIN = Caller(tenant_id="t1", user_id="root", roles=frozenset({ROLE_TENANT_ADMIN}))
CACHE_SECONDS = 10.0  # Memberships' default


@pytest.fixture
def handler(db: PresenceDb, queue: EventQueue, make_handler, real_memberships) -> PresenceHandler:
    return make_handler(db, queue, members=real_memberships)


@pytest_asyncio.fixture
async def shared(conversation_addr: str, handler: PresenceHandler, kit: Any) -> str:
    """Alice and Bob share a group; Carol shares nothing with either. All three
    are online, Carol with a custom status."""
    conv_id = await kit.create_group(conversation_addr, ALICE, ["bob"])
    for caller in (ALICE, BOB, CAROL):
        await handler.connect(caller, f"{caller.user_id}-1", "gw1")
    await handler.set_status(CAROL, pb.PRESENCE_STATUS_BUSY, "Secret project")
    return conv_id


def anonymous(state: object) -> object:
    return dataclasses.replace(state, user_id="")  # type: ignore[type-var]


@pytest.mark.asyncio
async def test_a_member_sees_co_members_and_themselves_only(
    handler: PresenceHandler, shared: str
) -> None:
    alice, bob, carol, nobody = await handler.get(ALICE, ["alice", "bob", "carol", "nobody"])
    assert (alice.status, alice.device_count) == (pb.PRESENCE_STATUS_ONLINE, 1)
    assert (bob.status, bob.device_count) == (pb.PRESENCE_STATUS_ONLINE, 1)
    # Carol is online and busy, but Alice reads her as a user never seen:
    # no status, no last active time, no custom status.
    assert carol.user_id == "carol"
    assert (carol.status, carol.device_count, carol.last_active_ms) == (
        pb.PRESENCE_STATUS_OFFLINE,
        0,
        None,
    )
    assert carol.custom_status == ""
    assert anonymous(carol) == anonymous(nobody)


@pytest.mark.asyncio
async def test_staff_see_the_tenant(handler: PresenceHandler, shared: str) -> None:
    for reader in (AGENT, ADMIN):
        [carol] = await handler.get(reader, ["carol"])
        assert (carol.status, carol.custom_status) == (pb.PRESENCE_STATUS_BUSY, "Secret project")
        assert carol.last_active_ms is not None


@pytest.mark.asyncio
async def test_anyone_sees_themselves_without_sharing_anything(
    handler: PresenceHandler, shared: str
) -> None:
    [carol] = await handler.get(CAROL, ["carol"])
    assert (carol.status, carol.custom_status) == (pb.PRESENCE_STATUS_BUSY, "Secret project")


@pytest.mark.asyncio
async def test_a_deleted_conversation_shares_nothing_once_the_cache_lapses(
    handler: PresenceHandler, shared: str, conversation_addr: str, clock: FakeClock, kit: Any
) -> None:
    [bob] = await handler.get(ALICE, ["bob"])
    assert bob.status == pb.PRESENCE_STATUS_ONLINE
    ch = channel(conversation_addr, kit.internal_auth("gateway"), CONVERSATION)
    try:
        with acting_as(ADMIN):
            await cgrpc.ConversationServiceStub(ch).DeleteConversation(
                cpb.DeleteConversationRequest(conversation_id=shared), timeout=10
            )
    finally:
        await ch.close()
    # Remembered for the cache's life (presence/membership.py says why)...
    [bob] = await handler.get(ALICE, ["bob"])
    assert bob.status == pb.PRESENCE_STATUS_ONLINE
    # ...then asked again.
    clock.advance(CACHE_SECONDS + 1)
    await handler.connect(BOB, "bob-2", "gw1")  # still online after the clock moved
    [bob] = await handler.get(ALICE, ["bob"])
    assert (bob.status, bob.last_active_ms) == (pb.PRESENCE_STATUS_OFFLINE, None)
