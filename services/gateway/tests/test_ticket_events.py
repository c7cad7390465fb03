"""Support desk events: their socket names, payloads, and the rooms they reach."""

from __future__ import annotations

from typing import Any, cast

import pytest

from confab.conversation.v1 import conversation_pb2 as cpb
from confab.conversation.v1 import events_pb2 as ev
from confab.conversation.v1 import support_pb2 as spb
from confab_core.auth import JwtVerifier
from confab_core.identity import Caller
from gateway import convert
from gateway.realtime import rooms
from gateway.realtime.fanout import Fanout
from gateway.realtime.sockets import Session, SocketGateway

pytestmark = pytest.mark.asyncio

ROOM = "conv:t1:c1"


def ticket(**fields: Any) -> spb.Ticket:
    t = spb.Ticket(
        id="tk1",
        conversation_id="c1",
        subject="Refund",
        category="billing",
        priority=spb.TICKET_PRIORITY_HIGH,
        tags=["vip"],
        requester_id="req",
        status=spb.TICKET_STATUS_ASSIGNED,
        version=3,
        context=cpb.ContextLink(kind="tournament", id="42"),
        **fields,
    )
    t.created_at.FromSeconds(1_700_000_000)
    return t


def sla() -> spb.TicketSla:
    clock = spb.SlaClock(metric=spb.SLA_METRIC_RESOLUTION, breached=True)
    clock.due_at.FromSeconds(1_700_000_600)
    return spb.TicketSla(status=spb.SLA_STATUS_ACTIVE_WITH_MISSES, clocks=[clock])


def events(h: Any) -> dict[str, ev.ConversationEvent]:
    due = cpb.Message().created_at
    due.FromSeconds(1_700_000_600)
    return {
        "ticket_updated": h.event(
            1,
            ticket_updated=ev.TicketUpdated(
                ticket=ticket(assignee_id="ag1", sla=sla()),
                change="status",
                previous_status=spb.TICKET_STATUS_QUEUED,
            ),
        ),
        "ticket_assigned": h.event(
            2,
            ticket_assigned=ev.TicketAssigned(
                ticket=ticket(assignee_id="ag1"), previous_assignee_id="ag0"
            ),
        ),
        "ticket_escalated": h.event(
            3, ticket_escalated=ev.TicketEscalated(ticket=ticket(escalated=True), reason="stuck")
        ),
        "sla_warning": h.event(
            4,
            sla_warning=ev.SlaAlert(
                ticket=ticket(assignee_id="ag1"), metric=spb.SLA_METRIC_FIRST_RESPONSE, due_at=due
            ),
        ),
        "sla_breached": h.event(
            5,
            sla_breached=ev.SlaAlert(ticket=ticket(), metric=spb.SLA_METRIC_RESOLUTION, due_at=due),
        ),
        "queue_updated": h.event(
            6,
            queue_updated=ev.QueueUpdated(
                ticket_id="tk1",
                change="added",
                priority=spb.TICKET_PRIORITY_URGENT,
                team_id="team",
                category="billing",
                status=spb.TICKET_STATUS_QUEUED,
            ),
        ),
    }


async def test_ticket_event_names_and_payloads(h: Any) -> None:
    out = {k: convert.event(e) for k, e in events(h).items()}
    assert {k: o.event for k, o in out.items() if o} == {
        "ticket_updated": "ticket:updated",
        "ticket_assigned": "ticket:assigned",
        "ticket_escalated": "ticket:escalated",
        "sla_warning": "sla:warning",
        "sla_breached": "sla:breached",
        "queue_updated": "queue:updated",
    }
    data = {k: cast(Any, o).data for k, o in out.items()}
    for d in data.values():
        # Resumable by event seq like every conversation event.
        assert d["conversation_id"] == "c1" and d["event_seq"] > 0 and d["actor_id"] == "u1"
    updated = data["ticket_updated"]
    assert (updated["change"], updated["previous_status"]) == ("status", "queued")
    t = updated["ticket"]
    assert (t["id"], t["status"], t["priority"], t["assignee_id"]) == (
        "tk1",
        "assigned",
        "high",
        "ag1",
    )
    assert t["context"] == {"kind": "tournament", "id": "42"} and t["tags"] == ["vip"]
    assert t["created_at"] == "2023-11-14T22:13:20Z" and t["escalated_at"] is None
    assert t["sla"]["status"] == "active_with_misses"
    assert t["sla"]["clocks"] == [
        {
            "metric": "resolution",
            "due_at": "2023-11-14T22:23:20Z",
            "warn_at": None,
            "met_at": None,
            "breached": True,
            "paused": False,
            "remaining_seconds": 0,
        }
    ]
    assert data["ticket_assigned"]["previous_assignee_id"] == "ag0"
    escalated = data["ticket_escalated"]
    assert escalated["reason"] == "stuck" and escalated["ticket"]["escalated"] is True
    # Platform staff hear escalations of every tenant: the ticket names its own.
    assert escalated["ticket"]["tenant_id"] == "t1"
    assert "tenant_id" not in data["ticket_assigned"]["ticket"]
    assert data["sla_warning"]["metric"] == "first_response"
    assert data["sla_warning"]["due_at"].startswith("2023-11-14T22:23:20")
    assert data["sla_breached"]["ticket"]["sla"] is None
    assert data["queue_updated"] == {
        "conversation_id": "c1",
        "event_seq": 6,
        "actor_id": "u1",
        "ticket_id": "tk1",
        "change": "added",
        "priority": "urgent",
        "team_id": "team",
        "category": "billing",
        "status": "queued",
    }


@pytest.fixture
def server(h: Any) -> Any:
    srv = h.RoomServer()
    # ag1 (agent, assignee) has two sockets; adm is a tenant admin; req the requester
    # (in the room); pf is platform staff; other-tenant sockets share the user ids.
    layout = {
        "s-ag1a": ["user:t1:ag1", "staff:t1", ROOM],
        "s-ag1b": ["user:t1:ag1", "staff:t1"],
        "s-adm": ["user:t1:adm", "staff:t1", "admins:t1", ROOM],
        "s-ag2": ["user:t1:ag2", "staff:t1"],
        "s-req": ["user:t1:req", ROOM],
        "s-pf": ["user:confab-platform:pf", rooms.platform()],
        "s-t2": ["user:t2:ag1", "staff:t2", "admins:t2", "conv:t2:c1"],
    }
    for sid, joined in layout.items():
        for room in joined:
            srv.rooms.setdefault(room, set()).add(sid)
    return srv


async def test_each_ticket_event_reaches_its_rooms_once_per_socket(server: Any, h: Any) -> None:
    fanout = Fanout(server, h.opener())
    for event in events(h).values():
        await fanout.handle(h.record(event))
    reached = {
        name: audience
        for (name, _, _), audience in zip(server.emits, server.audiences, strict=True)
    }
    room_members = {"s-ag1a", "s-adm", "s-req"}
    assert reached == {
        "ticket:updated": room_members,
        "ticket:assigned": room_members | {"s-ag1b"},
        "ticket:escalated": room_members | {"s-pf"},
        "sla:warning": room_members | {"s-ag1b"},
        # No assignee: the room and the admins.
        "sla:breached": room_members,
        "queue:updated": room_members | {"s-ag1b", "s-ag2"},
    }
    # One emit per event: a socket in several target rooms hears it once.
    assert len(server.emits) == 6
    assert all(isinstance(room, list) and room[0] == ROOM for _, _, room in server.emits)


async def test_a_repeated_ticket_event_is_dropped(server: Any, h: Any) -> None:
    fanout = Fanout(server, h.opener())
    event = events(h)["ticket_escalated"]
    await fanout.handle(h.record(event))
    await fanout.handle(h.record(event))
    assert len(server.emitted("ticket:escalated")) == 1


async def test_sync_in_events_mode_replays_ticket_events_as_live(h: Any) -> None:
    server = h.RoomServer()
    stub = h.FakeConversation()
    gateway = SocketGateway(server, h.make_ops(stub), JwtVerifier(hs256_secret="x" * 40), "gw-1")
    gateway.sessions["sid1"] = Session(Caller("t1", "req"), "conn-1", 4e9)
    live = list(events(h).values())
    stub.responses["ListEvents"] = [
        cpb.ListEventsResponse(events=[e.SerializeToString() for e in live], has_more=False)
    ]
    ack = await server.handlers["sync"]("sid1", {"conversations": {"c1": 0}, "mode": "events"})
    replay = ack["events"]["c1"]
    assert [e["event"] for e in replay] == [cast(Any, convert.event(e)).event for e in live]
    assert [e["data"] for e in replay] == [cast(Any, convert.event(e)).data for e in live]


async def test_a_handoff_reaches_every_online_agent(server: Any, h: Any) -> None:
    """The bot's handoff: ticket:updated (change "handoff", with the reason and
    summary) and queue:updated (added) reach the staff room, not only the
    conversation's members."""
    fanout = Fanout(server, h.opener())
    handed = ticket(
        handoff_reason=spb.HANDOFF_REASON_FORBIDDEN_TOPIC,
        handoff_summary="Asked about a refund.",
        agent_id="helper",
    )
    handed.status = spb.TICKET_STATUS_QUEUED
    updated = ev.TicketUpdated(
        ticket=handed, change="handoff", previous_status=spb.TICKET_STATUS_BOT
    )
    queued = ev.QueueUpdated(ticket_id="tk1", change="added", status=spb.TICKET_STATUS_QUEUED)
    await fanout.handle(h.record(h.event(1, ticket_updated=updated)))
    await fanout.handle(h.record(h.event(2, queue_updated=queued)))
    staff_and_room = {"s-ag1a", "s-ag1b", "s-adm", "s-ag2", "s-req"}
    assert server.audiences == [staff_and_room, staff_and_room]
    name, payload, _ = server.emits[0]
    assert name == "ticket:updated"
    body = cast(dict[str, Any], payload)
    assert body["change"] == "handoff"
    assert body["ticket"]["handoff_reason"] == "forbidden_topic"
    assert body["ticket"]["handoff_summary"] == "Asked about a refund."
    assert body["ticket"]["agent_id"] == "helper"
