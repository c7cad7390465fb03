"""AssignmentService over real gRPC, a real database and the real presence
service: rights, bounds, compare-and-set, the roster learned from callers,
tenant isolation and the audit of every change."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

from confab.conversation.v1 import assignment_pb2 as pb
from confab.conversation.v1 import assignment_pb2_grpc as pb_grpc
from confab_core.clock import FakeClock
from confab_core.grpcx.client import channel
from confab_core.grpcx.server import GrpcServer
from confab_core.identity import ROLE_AGENT, ROLE_MEMBER, ROLE_TENANT_ADMIN, Caller
from confab_core.servicetoken import CONVERSATION
from conversation.assignment_servicer import AssignmentServicer
from conversation.handlers.assignment import CAPACITY_SET, SETTINGS_UPDATED, AssignmentHandler
from conversation.handlers.audit import AuditTrail
from conversation.handlers.base import HandlerBase
from conversation.handlers.unit import UnitOfWork
from conversation.storage.db import TENANT_COLLECTIONS, Database
from conversation.support_assign import TicketView

from . import presence_peer as peer
from .conftest import TENANT_A, TENANT_B, user
from .presence_peer import PresencePeer
from .test_servicer import AUTH, GATEWAY_AUTH, As, trailing_code

# The real presence service, in-process (fixtures of presence_peer.py).
redis_server = peer.redis_server
presence_peer = peer.presence_peer

ADMIN = user("root", TENANT_A, ROLE_TENANT_ADMIN)
ANN = user("ann", TENANT_A, ROLE_AGENT)
BOB = user("bob", TENANT_A, ROLE_MEMBER, ROLE_AGENT)
MEMBER = user("mia", TENANT_A, ROLE_MEMBER)
ADMIN_B = user("root", TENANT_B, ROLE_TENANT_ADMIN)


@pytest_asyncio.fixture
async def woken() -> list[str]:
    return []


@pytest_asyncio.fixture
async def stub(
    unit: UnitOfWork, db: Database, clock: FakeClock, presence_peer: PresencePeer, woken: list[str]
) -> AsyncIterator[pb_grpc.AssignmentServiceStub]:
    handler = AssignmentHandler(
        db,
        clock,
        AuditTrail(db, clock, unit.locks),
        presence_peer.client,
        TicketView(),
        woken.append,
    )
    server = GrpcServer(0, AUTH, host="127.0.0.1")
    servicer = AssignmentServicer(handler)
    server.add(
        lambda s: pb_grpc.add_AssignmentServiceServicer_to_server(servicer, s),
        pb.DESCRIPTOR.services_by_name["AssignmentService"].full_name,
    )
    port = await server.start()
    ch = channel(f"127.0.0.1:{port}", GATEWAY_AUTH, CONVERSATION)
    try:
        yield pb_grpc.AssignmentServiceStub(ch)
    finally:
        await ch.close()
        await server.stop(0)


async def _refused(call: object, status: grpc.StatusCode, code: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() == status
    assert trailing_code(info.value) == code


async def _known(unit: UnitOfWork, *callers: Caller) -> None:
    """The callers made a call: the service remembers them (and their roles)."""
    base = HandlerBase(unit)
    for caller in callers:
        await base.remember_profile(caller)


@pytest.mark.asyncio
async def test_a_new_tenant_reads_the_defaults(stub: pb_grpc.AssignmentServiceStub) -> None:
    with As(ANN):
        settings = (await stub.GetAssignmentSettings(pb.GetAssignmentSettingsRequest())).settings
    assert not settings.enabled
    assert settings.mode == pb.ASSIGNMENT_MODE_ROUND_ROBIN
    assert settings.default_capacity == 5
    assert settings.version == 0 and not settings.HasField("updated_at")


@pytest.mark.asyncio
async def test_an_admin_changes_settings_by_version_audited_and_wakes_the_assigner(
    stub: pb_grpc.AssignmentServiceStub, db: Database, woken: list[str]
) -> None:
    with As(ADMIN):
        first = await stub.UpdateAssignmentSettings(
            pb.UpdateAssignmentSettingsRequest(
                enabled=True, mode=pb.ASSIGNMENT_MODE_LEAST_BUSY, expected_version=0
            )
        )
        assert first.settings.enabled and first.settings.mode == pb.ASSIGNMENT_MODE_LEAST_BUSY
        assert first.settings.default_capacity == 5 and first.settings.version == 1
        await _refused(
            stub.UpdateAssignmentSettings(
                pb.UpdateAssignmentSettingsRequest(default_capacity=9, expected_version=0)
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "version_conflict",
        )
        second = await stub.UpdateAssignmentSettings(
            pb.UpdateAssignmentSettingsRequest(default_capacity=9, expected_version=1)
        )
    assert second.settings.version == 2 and second.settings.default_capacity == 9
    assert second.settings.mode == pb.ASSIGNMENT_MODE_LEAST_BUSY
    assert woken == [TENANT_A, TENANT_A]
    audit = AuditTrail(db, FakeClock())
    found = await audit.query(ADMIN, action=SETTINGS_UPDATED)
    assert [
        (r.entry.before.get("default_capacity"), r.entry.after.get("default_capacity"))
        for r in found
    ] == [
        (5, 9),
        (5, 5),
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "request_",
    [
        pb.UpdateAssignmentSettingsRequest(default_capacity=0),
        pb.UpdateAssignmentSettingsRequest(default_capacity=1001),
        pb.UpdateAssignmentSettingsRequest(mode=pb.ASSIGNMENT_MODE_UNSPECIFIED),
        pb.UpdateAssignmentSettingsRequest(enabled=True, default_capacity=-1),
    ],
)
async def test_settings_out_of_bounds_are_refused_and_nothing_changes(
    stub: pb_grpc.AssignmentServiceStub, request_: pb.UpdateAssignmentSettingsRequest
) -> None:
    with As(ADMIN):
        await _refused(
            stub.UpdateAssignmentSettings(request_),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_assignment_settings",
        )
        after = (await stub.GetAssignmentSettings(pb.GetAssignmentSettingsRequest())).settings
    assert after.version == 0 and not after.enabled


@pytest.mark.asyncio
async def test_only_admins_change_and_only_staff_read(stub: pb_grpc.AssignmentServiceStub) -> None:
    with As(ANN):
        await _refused(
            stub.UpdateAssignmentSettings(pb.UpdateAssignmentSettingsRequest(enabled=True)),
            grpc.StatusCode.PERMISSION_DENIED,
            "forbidden",
        )
        await _refused(
            stub.SetAgentCapacity(pb.SetAgentCapacityRequest(user_id="ann", capacity=3)),
            grpc.StatusCode.PERMISSION_DENIED,
            "forbidden",
        )
    with As(MEMBER):
        await _refused(
            stub.GetAssignmentSettings(pb.GetAssignmentSettingsRequest()),
            grpc.StatusCode.PERMISSION_DENIED,
            "forbidden",
        )
        await _refused(
            stub.ListAgents(pb.ListAgentsRequest()), grpc.StatusCode.PERMISSION_DENIED, "forbidden"
        )


@pytest.mark.asyncio
async def test_the_roster_is_the_tenants_agents_and_admins_with_presence(
    stub: pb_grpc.AssignmentServiceStub, unit: UnitOfWork, presence_peer: PresencePeer
) -> None:
    await _known(unit, ADMIN, ANN, BOB, MEMBER, user("ann", TENANT_B, ROLE_AGENT))
    await presence_peer.online(TENANT_A, "ann")
    await presence_peer.online(TENANT_A, "bob")
    await presence_peer.away(TENANT_A, "bob")
    with As(ANN):
        agents = (await stub.ListAgents(pb.ListAgentsRequest())).agents
    assert [(a.user_id, a.online, a.capacity, a.open_tickets) for a in agents] == [
        ("ann", True, 5, 0),
        ("bob", False, 5, 0),
        ("root", False, 5, 0),
    ]
    assert list(agents[1].roles) == [ROLE_AGENT, ROLE_MEMBER] and agents[0].name == "Ann"


@pytest.mark.asyncio
async def test_a_member_made_agent_joins_the_roster_at_their_next_call(
    stub: pb_grpc.AssignmentServiceStub, unit: UnitOfWork
) -> None:
    base = HandlerBase(unit)
    await base.remember_profile(MEMBER)
    await base.remember_profile(ADMIN)
    await base.remember_profile(user("mia", TENANT_A, ROLE_MEMBER, ROLE_AGENT))
    with As(ADMIN):
        agents = (await stub.ListAgents(pb.ListAgentsRequest())).agents
    assert [a.user_id for a in agents] == ["mia", "root"]


@pytest.mark.asyncio
async def test_an_admin_sets_and_clears_an_agents_capacity_audited(
    stub: pb_grpc.AssignmentServiceStub, unit: UnitOfWork, db: Database, woken: list[str]
) -> None:
    await _known(unit, ADMIN, ANN)
    with As(ADMIN):
        agent = (
            await stub.SetAgentCapacity(pb.SetAgentCapacityRequest(user_id="ann", capacity=2))
        ).agent
        assert (agent.capacity, agent.custom_capacity) == (2, True)
        agent = (
            await stub.SetAgentCapacity(pb.SetAgentCapacityRequest(user_id="ann", clear=True))
        ).agent
    assert (agent.capacity, agent.custom_capacity) == (5, False)
    assert woken == [TENANT_A, TENANT_A]
    found = await AuditTrail(db, FakeClock()).query(ADMIN, action=CAPACITY_SET)
    assert [
        (r.entry.target.id, r.entry.before["capacity"], r.entry.after["capacity"]) for r in found
    ] == [
        ("ann", 2, None),
        ("ann", None, 2),
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("request_", "status", "code"),
    [
        (
            pb.SetAgentCapacityRequest(user_id="ann", capacity=1001),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_capacity",
        ),
        (
            pb.SetAgentCapacityRequest(user_id="ann", capacity=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_capacity",
        ),
        (
            pb.SetAgentCapacityRequest(user_id="", capacity=1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_user_id",
        ),
        # A member is not an agent; a user never seen is no one.
        (
            pb.SetAgentCapacityRequest(user_id="mia", capacity=1),
            grpc.StatusCode.NOT_FOUND,
            "agent_not_found",
        ),
        (
            pb.SetAgentCapacityRequest(user_id="zed", capacity=1),
            grpc.StatusCode.NOT_FOUND,
            "agent_not_found",
        ),
    ],
)
async def test_bad_capacity_changes_are_refused_and_store_nothing(
    stub: pb_grpc.AssignmentServiceStub,
    unit: UnitOfWork,
    db: Database,
    request_: pb.SetAgentCapacityRequest,
    status: grpc.StatusCode,
    code: str,
) -> None:
    await _known(unit, ADMIN, ANN, MEMBER)
    with As(ADMIN):
        await _refused(stub.SetAgentCapacity(request_), status, code)
    assert await db.db["assignment_agents"].count_documents({}) == 0
    assert await AuditTrail(db, FakeClock()).query(ADMIN, action=CAPACITY_SET) == []


@pytest.mark.asyncio
async def test_another_tenants_agent_and_settings_are_out_of_reach(
    stub: pb_grpc.AssignmentServiceStub, unit: UnitOfWork
) -> None:
    await _known(unit, ADMIN, ANN)
    with As(ADMIN):
        await stub.UpdateAssignmentSettings(pb.UpdateAssignmentSettingsRequest(enabled=True))
    with As(ADMIN_B):
        await _refused(
            stub.SetAgentCapacity(pb.SetAgentCapacityRequest(user_id="ann", capacity=1)),
            grpc.StatusCode.NOT_FOUND,
            "agent_not_found",
        )
        assert list((await stub.ListAgents(pb.ListAgentsRequest())).agents) == []
        theirs = (await stub.GetAssignmentSettings(pb.GetAssignmentSettingsRequest())).settings
    assert not theirs.enabled and theirs.version == 0


def test_settings_and_capacities_are_tenant_data() -> None:
    assert {"assignment_settings", "assignment_agents"} <= set(TENANT_COLLECTIONS)
