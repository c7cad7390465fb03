"""Platform staff's routes over ASGI: bad input never reaches the service, every
route spends its own budget first, and what goes through is translated whole."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
import pytest_asyncio

from confab.conversation.v1 import conversation_pb2 as cpb
from confab.conversation.v1 import jobs_pb2 as jpb
from confab.conversation.v1 import platform_pb2 as ppb
from confab.conversation.v1 import support_pb2 as spb
from confab_core.auth import JwtVerifier, mint_hs256
from confab_core.identity import PLATFORM_TENANT_ID, Caller
from gateway.clients.jobs import JobClient
from gateway.clients.platform import PlatformClient
from gateway.context import GatewayContext
from gateway.ratelimit import Action, RateLimited

from .conftest import SECRET, shared_api

pytestmark = pytest.mark.asyncio


def escalated() -> spb.Ticket:
    t = spb.Ticket(
        id="tk1",
        conversation_id="c1",
        tenant_id="t1",
        subject="Payout stuck",
        priority=spb.TICKET_PRIORITY_URGENT,
        status=spb.TICKET_STATUS_ASSIGNED,
        escalated=True,
    )
    t.escalated_at.FromSeconds(1_700_000_000)
    return t


class FakeService:
    """Records each request of PlatformService and JobService; answers with samples."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        async def rpc(request: Any, timeout: float | None = None) -> Any:
            self.calls.append((name, request))
            if name in ("CreateTenantErasure", "GetJob"):
                job = jpb.Job(id="j1", kind="tenant_erasure", status="queued")
                return getattr(jpb, f"{name}Response")(job=job)
            if name == "ListEscalatedTickets":
                return ppb.ListEscalatedTicketsResponse(tickets=[escalated()], next_page_token="n")
            if name == "ListEscalatedMessages":
                msg = cpb.Message(
                    id="m1", conversation_id="c1", seq=1, text="hi", kind=cpb.MESSAGE_KIND_TEXT
                )
                return ppb.ListEscalatedMessagesResponse(
                    messages=[msg], tenant_id="t1", conversation_id="c1"
                )
            if name == "ReplyToEscalatedTicket":
                msg = cpb.Message(
                    id="m2", conversation_id="c1", seq=2, text="on it", kind=cpb.MESSAGE_KIND_TEXT
                )
                return ppb.ReplyToEscalatedTicketResponse(message=msg, created=request.text != "x")
            return getattr(ppb, f"{name}Response")(ticket=escalated())

        return rpc


class Limiter:
    def __init__(self) -> None:
        self.checked: list[Action] = []
        self.refuse = False

    async def check(self, caller: Caller, action: Action) -> None:
        self.checked.append(action)
        if self.refuse:
            raise RateLimited("slow down", "rate_limited", 3)


class Ops:
    def __init__(self, limiter: Any) -> None:
        self.limiter = limiter


World = tuple[httpx.AsyncClient, FakeService, Limiter]


@pytest_asyncio.fixture
async def world() -> AsyncIterator[World]:
    stub, limiter = FakeService(), Limiter()
    backends = type(
        "B",
        (),
        {
            "jobs": JobClient(cast(Any, stub), 5.0),
            "platform": PlatformClient(cast(Any, stub), 5.0),
        },
    )()
    api = shared_api()
    api.state.gateway = GatewayContext(
        settings=cast(Any, None),
        verifier=JwtVerifier(hs256_secret=SECRET),
        backends=cast(Any, backends),
        ops=cast(Any, Ops(limiter)),
    )
    staff = mint_hs256(SECRET, tenant_id=PLATFORM_TENANT_ID, user_id="pf", roles=["super_admin"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api),
        base_url="http://gateway/api/v1",
        headers={"Authorization": f"Bearer {staff}"},
    ) as http:
        yield http, stub, limiter


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/platform/tickets/tk1/messages", {}),
        ("post", "/platform/tickets/tk1/messages", {"text": "", "client_msg_id": "a"}),
        ("post", "/platform/tickets/tk1/messages", {"text": "hi", "client_msg_id": ""}),
        ("post", "/platform/tickets/tk1/messages", {"text": "hi", "client_msg_id": "a", "x": 1}),
        ("post", "/platform/tickets/tk1/transitions", {"action": "explode"}),
        ("post", "/platform/tickets/tk1/transitions", {}),
        ("post", "/platform/tickets/tk1/transitions", {"action": "resolve", "note": 7}),
        ("post", "/platform/tenants/t1/erasure", {"confirm_tenant_id": ""}),
        ("post", "/platform/tenants/t1/erasure", {}),
        ("get", "/platform/tickets/" + "x" * 129, None),
        ("get", "/platform/tickets?limit=0", None),
        ("get", "/platform/tickets?limit=1000", None),
        ("get", "/platform/tickets/tk1/messages?after_seq=-1", None),
        ("get", "/platform/tenants/t1/jobs/" + "x" * 129, None),
    ],
)
async def test_bad_input_is_422_and_reaches_no_service(
    world: World, method: str, path: str, body: dict[str, Any] | None
) -> None:
    http, stub, limiter = world
    resp = await (http.post(path, json=body) if method == "post" else http.get(path))
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"]
    assert stub.calls == [] and limiter.checked == []


@pytest.mark.parametrize(
    ("method", "path", "body", "action"),
    [
        ("get", "/platform/tickets", None, Action.PLATFORM_READ),
        ("get", "/platform/tickets/tk1", None, Action.PLATFORM_READ),
        ("get", "/platform/tickets/tk1/messages", None, Action.PLATFORM_READ),
        (
            "post",
            "/platform/tickets/tk1/messages",
            {"text": "hi", "client_msg_id": "a"},
            Action.PLATFORM_WRITE,
        ),
        ("post", "/platform/tickets/tk1/transitions", {"action": "resolve"}, Action.PLATFORM_WRITE),
        ("post", "/platform/tenants/t1/erasure", {"confirm_tenant_id": "t1"}, Action.ERASURE),
        ("get", "/platform/tenants/t1/jobs/j1", None, Action.JOB_STATUS),
    ],
)
async def test_every_route_spends_its_own_budget_first(
    world: World, method: str, path: str, body: dict[str, Any] | None, action: Action
) -> None:
    http, stub, limiter = world
    limiter.refuse = True
    resp = await (http.post(path, json=body) if method == "post" else http.get(path))
    assert resp.status_code == 429, resp.text
    assert resp.headers["Retry-After"] == "3"
    assert limiter.checked == [action] and stub.calls == []


async def test_requests_and_answers_are_translated(world: World) -> None:
    http, stub, _ = world
    page = await http.get("/platform/tickets?include_closed=true&limit=5&cursor=abc")
    assert page.status_code == 200, page.text
    [ticket] = page.json()["tickets"]
    assert (ticket["tenant_id"], ticket["priority"], ticket["escalated"]) == ("t1", "urgent", True)
    assert ticket["escalated_at"] == "2023-11-14T22:13:20Z"
    assert page.json()["next_cursor"] == "n"
    name, req = stub.calls[-1]
    assert name == "ListEscalatedTickets"
    assert (req.include_closed, req.limit, req.page_token) == (True, 5, "abc")

    msgs = await http.get("/platform/tickets/tk1/messages?before_seq=9&limit=3")
    assert msgs.json()["tenant_id"] == "t1" and msgs.json()["messages"][0]["text"] == "hi"
    _, req = stub.calls[-1]
    assert (req.ticket_id, req.before_seq, req.limit) == ("tk1", 9, 3)

    sent = await http.post(
        "/platform/tickets/tk1/messages", json={"text": "ok", "client_msg_id": "a"}
    )
    assert sent.status_code == 201 and sent.json()["message"]["id"] == "m2"
    again = await http.post(
        "/platform/tickets/tk1/messages", json={"text": "x", "client_msg_id": "a"}
    )
    assert again.status_code == 200 and again.json()["created"] is False

    moved = await http.post(
        "/platform/tickets/tk1/transitions", json={"action": "wait_on_user", "note": "asked"}
    )
    assert moved.status_code == 200 and moved.json()["ticket"]["status"] == "assigned"
    _, req = stub.calls[-1]
    assert (req.action, req.note) == (spb.TICKET_ACTION_WAIT_ON_USER, "asked")

    erased = await http.post("/platform/tenants/t9/erasure", json={"confirm_tenant_id": "t9"})
    assert erased.status_code == 202 and erased.json()["kind"] == "tenant_erasure"
    _, req = stub.calls[-1]
    assert (req.tenant_id, req.confirm_tenant_id) == ("t9", "t9")
    job = await http.get("/platform/tenants/t9/jobs/j1")
    _, req = stub.calls[-1]
    assert job.status_code == 200 and (req.tenant_id, req.job_id) == ("t9", "j1")
