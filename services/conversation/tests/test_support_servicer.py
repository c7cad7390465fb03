"""SupportService and SupportAdminService over a real loopback gRPC connection,
with the production interceptors: translation, and the stable error codes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
import pytest_asyncio

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import support_admin_pb2 as apb
from confab.conversation.v1 import support_admin_pb2_grpc as apb_grpc
from confab.conversation.v1 import support_pb2 as spb
from confab.conversation.v1 import support_pb2_grpc as spb_grpc
from confab_core.clock import SystemClock
from confab_core.errors import ERROR_CODE_METADATA_KEY
from confab_core.grpcx.client import channel
from confab_core.grpcx.server import GrpcServer
from confab_core.identity import (
    ROLE_AGENT,
    ROLE_MEMBER,
    ROLE_TENANT_ADMIN,
    Caller,
    reset_caller,
    set_caller,
)
from confab_core.servicetoken import CONVERSATION, GATEWAY, InternalAuth
from conversation.handlers.audit import AuditTrail
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.support import SupportHandler
from conversation.handlers.support_admin import SupportAdminHandler
from conversation.handlers.tenant_settings import SettingsHandler
from conversation.handlers.unit import UnitOfWork
from conversation.support_admin_servicer import SupportAdminServicer
from conversation.support_servicer import SupportServicer

from .conftest import TENANT_A, TENANT_B, create, send, user

pytestmark = pytest.mark.asyncio

KEY = b"conversation-tests-internal-key-32b"
AUTH = InternalAuth(CONVERSATION, KEY, SystemClock())
GATEWAY_AUTH = InternalAuth(GATEWAY, KEY, SystemClock())
MIA = user("mia")
ADA = user("ada", TENANT_A, ROLE_MEMBER, ROLE_AGENT)
ROOT = user("root", TENANT_A, ROLE_MEMBER, ROLE_TENANT_ADMIN)
ROOT_B = user("root", TENANT_B, ROLE_MEMBER, ROLE_TENANT_ADMIN)


@dataclass
class Stubs:
    support: spb_grpc.SupportServiceStub
    admin: apb_grpc.SupportAdminServiceStub


@pytest_asyncio.fixture
async def stubs(unit: UnitOfWork) -> AsyncIterator[Stubs]:
    server = GrpcServer(0, AUTH, host="127.0.0.1")
    support = SupportServicer(SupportHandler(unit))
    desk = SupportAdminServicer(
        SupportAdminHandler(
            unit.database,
            unit.clock,
            AuditTrail(unit.database, unit.clock),
            SettingsHandler(unit.database, unit.clock, AuditTrail(unit.database, unit.clock)),
        )
    )
    server.add(
        lambda s: spb_grpc.add_SupportServiceServicer_to_server(support, s),
        spb.DESCRIPTOR.services_by_name["SupportService"].full_name,
    )
    server.add(
        lambda s: apb_grpc.add_SupportAdminServiceServicer_to_server(desk, s),
        apb.DESCRIPTOR.services_by_name["SupportAdminService"].full_name,
    )
    port = await server.start()
    ch = channel(f"127.0.0.1:{port}", GATEWAY_AUTH, CONVERSATION)
    try:
        yield Stubs(spb_grpc.SupportServiceStub(ch), apb_grpc.SupportAdminServiceStub(ch))
    finally:
        await ch.close()
        await server.stop(0)


class As:
    def __init__(self, caller: Caller) -> None:
        self._caller = caller

    def __enter__(self) -> None:
        self._token = set_caller(self._caller)

    def __exit__(self, *exc: object) -> None:
        reset_caller(self._token)


def code(err: grpc.aio.AioRpcError) -> str | None:
    return next(
        (str(v) for k, v in err.trailing_metadata() or () if k == ERROR_CODE_METADATA_KEY), None
    )


async def test_a_ticket_round_trip(stubs: Stubs) -> None:
    with As(ROOT):
        await stubs.admin.PutCategories(
            apb.PutCategoriesRequest(categories=["billing"]), timeout=10
        )
        team = (
            await stubs.admin.CreateTeam(
                apb.CreateTeamRequest(name="Tier 1", agent_ids=["ada"]), timeout=10
            )
        ).team
    with As(MIA):
        opened = await stubs.support.OpenTicket(
            spb.OpenTicketRequest(
                subject="Invoice",
                category="billing",
                priority=spb.TICKET_PRIORITY_HIGH,
                tags=["q3"],
                context=pb.ContextLink(kind="order", id="O-1"),
                text="it is wrong",
            ),
            timeout=10,
        )
        ticket = opened.ticket
        assert (ticket.subject, ticket.category, ticket.status) == (
            "Invoice",
            "billing",
            spb.TICKET_STATUS_QUEUED,
        )
        assert (ticket.context.kind, ticket.context.id) == ("order", "O-1")
        assert opened.conversation.kind == pb.CONVERSATION_KIND_SUPPORT
        renamed = await stubs.support.UpdateTicket(
            spb.UpdateTicketRequest(ticket_id=ticket.id, subject="Invoice Q3"), timeout=10
        )
        assert renamed.ticket.subject == "Invoice Q3" and renamed.ticket.category == "billing"
        mine = await stubs.support.ListMyTickets(spb.ListMyTicketsRequest(), timeout=10)
        assert [t.id for t in mine.tickets] == [ticket.id]
    with As(ADA):
        queue = await stubs.support.ListTicketQueue(spb.ListTicketQueueRequest(), timeout=10)
        assert [t.id for t in queue.tickets] == [ticket.id]
        claimed = await stubs.support.ClaimTicket(
            spb.ClaimTicketRequest(ticket_id=ticket.id), timeout=10
        )
        assert claimed.ticket.assignee_id == "ada"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.support.ClaimTicket(spb.ClaimTicketRequest(ticket_id=ticket.id), timeout=10)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert code(err.value) == "already_assigned"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.support.TransitionTicket(
                spb.TransitionTicketRequest(ticket_id=ticket.id, action=spb.TICKET_ACTION_REOPEN),
                timeout=10,
            )
        assert code(err.value) == "invalid_transition"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.support.TransitionTicket(
                spb.TransitionTicketRequest(ticket_id=ticket.id), timeout=10
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert code(err.value) == "invalid_action"
        waiting = await stubs.support.TransitionTicket(
            spb.TransitionTicketRequest(
                ticket_id=ticket.id, action=spb.TICKET_ACTION_WAIT_ON_USER, note="need the PDF"
            ),
            timeout=10,
        )
        assert waiting.ticket.status == spb.TICKET_STATUS_WAITING_ON_USER
        got = await stubs.support.GetConversationTicket(
            spb.GetConversationTicketRequest(conversation_id=ticket.conversation_id), timeout=10
        )
        assert got.ticket.id == ticket.id
    with As(ROOT):
        moved = await stubs.support.AssignTicket(
            spb.AssignTicketRequest(ticket_id=ticket.id, team_id=team.id), timeout=10
        )
        assert moved.ticket.status == spb.TICKET_STATUS_QUEUED and moved.ticket.team_id == team.id
        escalated = await stubs.support.EscalateTicket(
            spb.EscalateTicketRequest(ticket_id=ticket.id, reason="VIP"), timeout=10
        )
        assert escalated.ticket.escalated
        teams = await stubs.admin.ListTeams(apb.ListTeamsRequest(), timeout=10)
        assert [(t.name, list(t.agent_ids)) for t in teams.teams] == [("Tier 1", ["ada"])]
    with As(ROOT_B):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.support.GetTicket(spb.GetTicketRequest(ticket_id=ticket.id), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert code(err.value) == "ticket_not_found"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.admin.DeleteTeam(apb.DeleteTeamRequest(team_id=team.id), timeout=10)
        assert code(err.value) == "team_not_found"
        categories = await stubs.admin.ListCategories(apb.ListCategoriesRequest(), timeout=10)
        assert list(categories.categories) == []


async def test_a_quick_ticket_over_grpc(stubs: Stubs, unit: UnitOfWork) -> None:
    group = (await create(ConversationHandler(unit), MIA, members=["ada"])).conversation.id
    said = (await send(MessageHandler(unit), MIA, group, "refund please")).message
    with As(ADA):
        made = await stubs.support.TicketFromMessage(
            spb.TicketFromMessageRequest(
                message=spb.MessageRef(conversation_id=group, message_id=said.id),
                subject="Refund",
            ),
            timeout=10,
        )
    assert made.ticket.requester_id == "mia"
    assert made.ticket.source.message_id == said.id
    assert made.conversation.kind == pb.CONVERSATION_KIND_SUPPORT
