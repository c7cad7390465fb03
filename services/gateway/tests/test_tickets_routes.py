"""Ticket, queue and support desk routes over ASGI: bad input never reaches the
service, each route spends its budget first, the service's refusals keep their
stable codes, and tickets translate field by field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import httpx
import pytest
import pytest_asyncio

from confab.conversation.v1 import conversation_pb2 as cpb
from confab.conversation.v1 import support_admin_pb2 as apb
from confab.conversation.v1 import support_pb2 as spb
from confab_core.auth import JwtVerifier
from confab_core.errors import ERROR_CODE_METADATA_KEY
from confab_core.identity import Caller
from gateway import convert, ticketconvert
from gateway.clients.support import SupportAdminClient, SupportClient
from gateway.context import GatewayContext
from gateway.ratelimit import Action, RateLimited

from .conftest import SECRET, shared_api, token

pytestmark = pytest.mark.asyncio


def sample_ticket() -> spb.Ticket:
    t = spb.Ticket(
        id="t1",
        conversation_id="c1",
        subject="Printer",
        category="hardware",
        priority=spb.TICKET_PRIORITY_HIGH,
        tags=["office"],
        requester_id="u1",
        requester_name="Una",
        assignee_id="a1",
        team_id="team1",
        context=cpb.ContextLink(kind="tournament", id="T9"),
        status=spb.TICKET_STATUS_ASSIGNED,
        escalated=True,
        platform=False,
        source=spb.MessageRef(conversation_id="c0", message_id="m0"),
        version=3,
    )
    t.created_at.FromSeconds(1_700_000_000)
    t.updated_at.FromSeconds(1_700_000_100)
    t.escalated_at.FromSeconds(1_700_000_050)
    t.queued_at.FromSeconds(1_700_000_001)
    t.sla.status = spb.SLA_STATUS_ACTIVE
    clock = t.sla.clocks.add(metric=spb.SLA_METRIC_FIRST_RESPONSE, paused=True)
    clock.remaining_seconds = 60
    return t


def _response(name: str) -> Any:
    for module in (spb, apb):
        cls = getattr(module, f"{name}Response", None)
        if cls is None:
            continue
        resp = cls()
        if "ticket" in cls.DESCRIPTOR.fields_by_name:
            resp.ticket.CopyFrom(sample_ticket())
        if "tickets" in cls.DESCRIPTOR.fields_by_name:
            resp.tickets.append(sample_ticket())
        if "conversation" in cls.DESCRIPTOR.fields_by_name:
            resp.conversation.id = "c1"
            resp.conversation.kind = cpb.CONVERSATION_KIND_SUPPORT
            resp.conversation.created_at.FromSeconds(1_700_000_000)
            resp.conversation.last_activity_at.FromSeconds(1_700_000_000)
        if "team" in cls.DESCRIPTOR.fields_by_name:
            resp.team.id = "team1"
            resp.team.name = "Tier 1"
            resp.team.created_at.FromSeconds(1_700_000_000)
            resp.team.updated_at.FromSeconds(1_700_000_000)
        return resp
    raise AttributeError(name)


class FakeSupport:
    """Records each SupportService / SupportAdminService request; answers with a
    sample, or raises the error set for the RPC."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.errors: dict[str, Exception] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        async def rpc(request: Any, **_: Any) -> Any:
            self.calls.append((name, request))
            if name in self.errors:
                raise self.errors[name]
            return _response(name)

        return rpc


class Limiter:
    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.checked: list[Action] = []

    async def check(self, caller: Caller, action: Action) -> None:
        self.checked.append(action)
        if self.refuse:
            raise RateLimited("slow down", "rate_limited", 3)


class Ops:
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter


def _rpc_error(status: grpc.StatusCode, code: str) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata((ERROR_CODE_METADATA_KEY, code))
    return grpc.aio.AioRpcError(status, grpc.aio.Metadata(), trailing, code)


World = tuple[httpx.AsyncClient, FakeSupport, Limiter]


async def _world(refuse: bool) -> AsyncIterator[World]:
    stub, limiter = FakeSupport(), Limiter(refuse)
    backends = type(
        "B",
        (),
        {
            "support": SupportClient(cast(Any, stub), 5.0),
            "support_admin": SupportAdminClient(cast(Any, stub), 5.0),
        },
    )()
    api = shared_api()
    api.state.gateway = GatewayContext(
        settings=cast(Any, None),
        verifier=JwtVerifier(hs256_secret=SECRET),
        backends=cast(Any, backends),
        ops=cast(Any, Ops(limiter)),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api),
        base_url="http://gateway/api/v1",
        headers={"Authorization": f"Bearer {token()}"},
    ) as http:
        yield http, stub, limiter


@pytest_asyncio.fixture
async def world() -> AsyncIterator[World]:
    async for w in _world(False):
        yield w


@pytest_asyncio.fixture
async def refusing() -> AsyncIterator[World]:
    async for w in _world(True):
        yield w


LONG = "x" * 129

BAD = [
    ("post", "/tickets", {}),
    ("post", "/tickets", {"subject": ""}),
    ("post", "/tickets", {"subject": "   "}),
    ("post", "/tickets", {"subject": "x" * 201}),
    ("post", "/tickets", {"subject": "s", "priority": "blocker"}),
    ("post", "/tickets", {"subject": "s", "tags": [""]}),
    ("post", "/tickets", {"subject": "s", "tags": ["t"] * 21}),
    ("post", "/tickets", {"subject": "s", "context": {"kind": "", "id": "x"}}),
    ("post", "/tickets", {"subject": "s", "text": ""}),
    ("post", "/tickets", {"subject": "s", "extra": 1}),
    ("patch", "/tickets/t1", {"priority": "blocker"}),
    ("patch", "/tickets/t1", {"expected_version": 0}),
    ("patch", f"/tickets/{LONG}", {}),
    ("post", "/tickets/t1/transitions", {"action": "explode"}),
    ("post", "/tickets/t1/transitions", {"action": "resolve", "note": "n" * 501}),
    ("post", "/tickets/t1/transitions", {"action": "handoff", "handoff_reason": "bored"}),
    (
        "post",
        "/tickets/t1/transitions",
        {"action": "handoff", "handoff_reason": "user_asked", "handoff_summary": "s" * 2001},
    ),
    ("post", "/tickets/t1/assign", {"assignee_id": LONG}),
    ("post", "/tickets/t1/escalate", {"reason": "r" * 501}),
    ("post", f"/tickets/{LONG}/claim", None),
    ("get", f"/tickets/{LONG}", None),
    ("get", "/tickets/queue?priority=blocker", None),
    ("get", "/tickets/queue?status=open", None),
    ("get", "/tickets/queue?limit=0", None),
    ("get", f"/tickets/queue?assignee={LONG}", None),
    ("get", "/tickets/mine?limit=101", None),
    ("post", "/conversations/c1/messages/m1/ticket", {}),
    ("put", "/support/categories", {"categories": [""]}),
    ("put", "/support/categories", {}),
    ("post", "/support/teams", {"name": ""}),
    ("post", "/support/teams", {"name": "t", "agent_ids": [""]}),
    ("put", f"/support/teams/{LONG}", {"name": "t"}),
]


@pytest.mark.parametrize(("method", "path", "body"), BAD)
async def test_bad_input_is_422_and_reaches_no_service(
    world: World, method: str, path: str, body: dict[str, Any] | None
) -> None:
    http, stub, limiter = world
    resp = await http.request(method, path, json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"]
    assert stub.calls == [] and limiter.checked == []


ROUTES = [
    ("post", "/tickets", {"subject": "s"}, Action.TICKET_WRITE, "OpenTicket"),
    ("get", "/tickets/t1", None, Action.TICKET_READ, "GetTicket"),
    ("patch", "/tickets/t1", {"subject": "s2"}, Action.TICKET_WRITE, "UpdateTicket"),
    (
        "post",
        "/tickets/t1/transitions",
        {"action": "resolve"},
        Action.TICKET_WRITE,
        "TransitionTicket",
    ),
    ("post", "/tickets/t1/claim", None, Action.TICKET_WRITE, "ClaimTicket"),
    ("post", "/tickets/t1/assign", {"assignee_id": "a1"}, Action.TICKET_WRITE, "AssignTicket"),
    ("post", "/tickets/t1/escalate", {}, Action.TICKET_WRITE, "EscalateTicket"),
    ("get", "/tickets/queue", None, Action.TICKET_READ, "ListTicketQueue"),
    ("get", "/tickets/mine", None, Action.TICKET_READ, "ListMyTickets"),
    ("get", "/conversations/c1/ticket", None, Action.TICKET_READ, "GetConversationTicket"),
    (
        "post",
        "/conversations/c1/messages/m1/ticket",
        {"subject": "s"},
        Action.TICKET_WRITE,
        "TicketFromMessage",
    ),
    ("get", "/support/categories", None, Action.TICKET_READ, "ListCategories"),
    ("put", "/support/categories", {"categories": ["a"]}, Action.SUPPORT_ADMIN, "PutCategories"),
    ("get", "/support/teams", None, Action.TICKET_READ, "ListTeams"),
    ("post", "/support/teams", {"name": "T"}, Action.SUPPORT_ADMIN, "CreateTeam"),
    ("put", "/support/teams/team1", {"name": "T"}, Action.SUPPORT_ADMIN, "UpdateTeam"),
    ("delete", "/support/teams/team1", None, Action.SUPPORT_ADMIN, "DeleteTeam"),
]


@pytest.mark.parametrize(("method", "path", "body", "action", "rpc"), ROUTES)
async def test_every_route_spends_its_own_budget_first(
    refusing: World,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    action: Action,
    rpc: str,
) -> None:
    http, stub, limiter = refusing
    resp = await http.request(method, path, json=body)
    assert resp.status_code == 429, resp.text
    assert resp.headers["Retry-After"] == "3"
    assert limiter.checked == [action] and stub.calls == []


@pytest.mark.parametrize(("method", "path", "body", "action", "rpc"), ROUTES)
async def test_every_route_reaches_its_rpc(
    world: World,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    action: Action,
    rpc: str,
) -> None:
    http, stub, _ = world
    resp = await http.request(method, path, json=body)
    assert resp.status_code < 300, resp.text
    assert [name for name, _ in stub.calls] == [rpc]


@pytest.mark.parametrize(
    ("status", "code", "http_status"),
    [
        (grpc.StatusCode.FAILED_PRECONDITION, "invalid_transition", 409),
        (grpc.StatusCode.FAILED_PRECONDITION, "already_assigned", 409),
        (grpc.StatusCode.FAILED_PRECONDITION, "version_mismatch", 409),
        (grpc.StatusCode.INVALID_ARGUMENT, "unknown_category", 422),
        # Another tenant's ticket, or one the caller may not see.
        (grpc.StatusCode.NOT_FOUND, "ticket_not_found", 404),
        (grpc.StatusCode.NOT_FOUND, "team_not_found", 404),
        (grpc.StatusCode.PERMISSION_DENIED, "forbidden", 403),
    ],
)
async def test_service_refusals_keep_their_codes(
    world: World, status: grpc.StatusCode, code: str, http_status: int
) -> None:
    http, stub, _ = world
    stub.errors["ClaimTicket"] = _rpc_error(status, code)
    resp = await http.post("/tickets/t1/claim")
    assert resp.status_code == http_status
    assert resp.json()["error"]["code"] == code


async def test_a_ticket_translates_every_field(world: World) -> None:
    http, _, _ = world
    resp = await http.get("/tickets/t1")
    assert resp.status_code == 200
    assert resp.json()["ticket"] == {
        "id": "t1",
        "conversation_id": "c1",
        "subject": "Printer",
        "category": "hardware",
        "priority": "high",
        "tags": ["office"],
        "requester_id": "u1",
        "requester_name": "Una",
        "assignee_id": "a1",
        "assignee_name": None,
        "team_id": "team1",
        "context": {"kind": "tournament", "id": "T9"},
        "status": "assigned",
        "escalated": True,
        "escalated_at": "2023-11-14T22:14:10Z",
        "platform": False,
        "source": {"conversation_id": "c0", "message_id": "m0"},
        "created_at": "2023-11-14T22:13:20Z",
        "updated_at": "2023-11-14T22:15:00Z",
        "queued_at": "2023-11-14T22:13:21Z",
        "first_response_at": None,
        "resolved_at": None,
        "closed_at": None,
        "sla": {
            "status": "active",
            "clocks": [
                {
                    "metric": "first_response",
                    "due_at": None,
                    "warn_at": None,
                    "met_at": None,
                    "breached": False,
                    "paused": True,
                    "remaining_seconds": 60,
                }
            ],
        },
        "version": 3,
        "handoff_reason": None,
        "handoff_summary": None,
        "handed_off_at": None,
        "agent_id": None,
    }


async def test_a_handoff_carries_its_reason_and_summary_both_ways(world: World) -> None:
    http, stub, _ = world
    resp = await http.post(
        "/tickets/t1/transitions",
        json={
            "action": "handoff",
            "handoff_reason": "forbidden_topic",
            "handoff_summary": "Asked about refunds.",
        },
    )
    assert resp.status_code == 200, resp.text
    (name, req) = stub.calls[0]
    assert name == "TransitionTicket"
    assert (req.action, req.handoff_reason, req.handoff_summary) == (
        spb.TICKET_ACTION_HANDOFF,
        spb.HANDOFF_REASON_FORBIDDEN_TOPIC,
        "Asked about refunds.",
    )
    handed = sample_ticket()
    handed.handoff_reason = spb.HANDOFF_REASON_FORBIDDEN_TOPIC
    handed.handoff_summary = "Asked about refunds."
    handed.handed_off_at.FromSeconds(1_700_000_001)
    handed.agent_id = "helper"
    out = ticketconvert.ticket(handed).model_dump(mode="json")
    assert (out["handoff_reason"], out["handoff_summary"], out["agent_id"]) == (
        "forbidden_topic",
        "Asked about refunds.",
        "helper",
    )
    assert out["handed_off_at"] == "2023-11-14T22:13:21Z"


async def test_queue_filters_reach_the_service(world: World) -> None:
    http, stub, _ = world
    resp = await http.get(
        "/tickets/queue",
        params=[
            ("status", "queued"),
            ("status", "assigned"),
            ("priority", "urgent"),
            ("assignee", "me"),
            ("team_id", "team1"),
            ("cursor", "abc"),
            ("limit", "5"),
        ],
    )
    assert resp.status_code == 200, resp.text
    (_, req) = stub.calls[0]
    assert list(req.statuses) == [spb.TICKET_STATUS_QUEUED, spb.TICKET_STATUS_ASSIGNED]
    assert req.priority == spb.TICKET_PRIORITY_URGENT
    assert (req.assignee, req.team_id, req.page_token, req.limit) == ("me", "team1", "abc", 5)
    assert resp.json()["next_cursor"] is None


async def test_update_sends_only_what_was_given(world: World) -> None:
    http, stub, _ = world
    await http.patch("/tickets/t1", json={"tags": [], "expected_version": 2})
    (_, req) = stub.calls[0]
    assert not req.HasField("subject") and not req.HasField("category")
    assert req.set_tags and list(req.tags) == [] and req.expected_version == 2


async def test_messages_carry_the_senders_role_and_their_ticket() -> None:
    msg = cpb.Message(
        id="m1", conversation_id="c1", seq=1, sender_id="a1", text="hi", kind=cpb.MESSAGE_KIND_TEXT
    )
    msg.created_at.FromSeconds(1_700_000_000)
    assert (convert.message(msg).sender_role, convert.message(msg).ticket_id) == (None, None)
    msg.sender_role = "agent"
    msg.ticket_id = "t1"
    out = convert.message(msg)
    assert (out.sender_role, out.ticket_id) == ("agent", "t1")
