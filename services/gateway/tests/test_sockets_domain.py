"""Socket.IO client events for the messaging domain, and sync by event seq."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from confab.conversation.v1 import conversation_pb2 as cpb
from confab.conversation.v1 import events_pb2 as ev
from confab_core.auth import JwtVerifier
from confab_core.identity import Caller
from gateway.realtime.sockets import Session, SocketGateway

pytestmark = pytest.mark.asyncio

CALLER = Caller(tenant_id="t1", user_id="u1", roles=frozenset({"member"}))


@pytest.fixture
def setup(h: Any) -> tuple[Any, Any]:
    server = h.RoomServer()
    stub = h.FakeConversation()
    gw = SocketGateway(server, h.make_ops(stub), JwtVerifier(hs256_secret="x" * 40), "gw-1")
    gw.sessions["sid1"] = Session(CALLER, "conn-1", 4e9)
    return server, stub


async def emit(server: Any, event: str, data: Any) -> Any:
    return await server.handlers[event]("sid1", data)


async def test_new_events_are_registered(setup: tuple[Any, Any]) -> None:
    server, _ = setup
    for name in (
        "message:send",
        "message:edit",
        "message:delete",
        "reaction:toggle",
        "conversation:update",
        "conversation:join",
        "conversation:leave",
        "conversation:read",
        "sync",
    ):
        assert name in server.handlers, name


async def test_edit_delete_react_update_ack(setup: tuple[Any, Any], h: Any) -> None:
    server, stub = setup
    stub.responses["EditMessage"] = cpb.EditMessageResponse(message=h.message(text="new"))
    stub.responses["DeleteMessage"] = cpb.DeleteMessageResponse(
        message=h.message(text="", deleted=True)
    )
    stub.responses["ToggleReaction"] = cpb.ToggleReactionResponse(message=h.message(), added=False)
    stub.responses["UpdateConversation"] = cpb.UpdateConversationResponse(
        conversation=h.conversation(title="renamed")
    )
    ack = await emit(
        server, "message:edit", {"conversation_id": "c1", "message_id": "m1", "text": "new"}
    )
    assert ack["ok"] is True and ack["message"]["text"] == "new"
    assert stub.last("EditMessage").text == "new"

    ack = await emit(server, "message:delete", {"conversation_id": "c1", "message_id": "m1"})
    assert ack["ok"] is True and ack["message"]["deleted"] is True

    ack = await emit(
        server, "reaction:toggle", {"conversation_id": "c1", "message_id": "m1", "emoji": "👍"}
    )
    assert ack["ok"] is True and ack["added"] is False and ack["message"]["id"] == "m1"

    ack = await emit(server, "conversation:update", {"conversation_id": "c1", "title": "renamed"})
    assert ack == {"ok": True, "conversation": ack["conversation"]}
    assert ack["conversation"]["title"] == "renamed"
    req = stub.last("UpdateConversation")
    assert req.HasField("title") and not req.HasField("topic")


async def test_send_with_file_over_the_socket(setup: tuple[Any, Any], h: Any) -> None:
    server, stub = setup
    stub.responses["SendMessage"] = cpb.SendMessageResponse(message=h.message(), created=True)
    ack = await emit(
        server,
        "message:send",
        {
            "conversation_id": "c1",
            "text": "",
            "client_msg_id": "k1",
            "file": {"url": "https://x.example/f", "name": "f"},
        },
    )
    assert ack["ok"] is True
    assert stub.last("SendMessage").file.url == "https://x.example/f"


@pytest.mark.parametrize(
    ("event", "data"),
    [
        ("message:edit", {"conversation_id": "c1", "message_id": "m1", "text": ""}),
        ("message:edit", {"conversation_id": "c1", "text": "x"}),
        ("message:delete", {"conversation_id": "c1"}),
        ("reaction:toggle", {"conversation_id": "c1", "message_id": "m1", "emoji": "x" * 65}),
        ("conversation:update", {"conversation_id": "c1"}),
        ("conversation:update", {"conversation_id": "c1", "title": "x" * 201}),
        ("message:edit", "not an object"),
        ("sync", {"conversations": {"c1": 0}, "mode": "bogus"}),
    ],
)
async def test_bad_payloads_get_an_error_ack(setup: tuple[Any, Any], event: str, data: Any) -> None:
    server, stub = setup
    ack = await emit(server, event, data)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_request"
    assert ack["error"]["message"]
    assert stub.calls == []


async def test_service_refusal_is_an_error_ack(setup: tuple[Any, Any], h: Any) -> None:
    server, stub = setup
    stub.responses["EditMessage"] = h.RpcError(
        grpc.StatusCode.PERMISSION_DENIED, "only the author may edit", "not_author"
    )
    ack = await emit(
        server, "message:edit", {"conversation_id": "c1", "message_id": "m1", "text": "x"}
    )
    assert ack == {
        "ok": False,
        "error": {"code": "not_author", "message": "only the author may edit"},
    }


async def test_unexpected_failure_still_acks(setup: tuple[Any, Any]) -> None:
    server, _ = setup
    # The fake answers with an empty message, which cannot be shown.
    ack = await emit(
        server, "message:edit", {"conversation_id": "c1", "message_id": "m1", "text": "x"}
    )
    assert ack == {
        "ok": False,
        "error": {"code": "bad_upstream_response", "message": "upstream service error"},
    }


def _events(h: Any, seqs: range) -> list[bytes]:
    return [
        h.event(n, message_updated=ev.MessageUpdated(message=h.message())).SerializeToString()
        for n in seqs
    ]


async def test_sync_events_mode_replays_in_order_across_pages(
    setup: tuple[Any, Any], h: Any
) -> None:
    server, stub = setup
    stub.responses["ListEvents"] = [
        cpb.ListEventsResponse(events=_events(h, range(6, 106)), has_more=True),
        cpb.ListEventsResponse(events=_events(h, range(106, 109)), has_more=False),
    ]
    ack = await emit(server, "sync", {"conversations": {"c1": 5}, "mode": "events"})
    assert ack["ok"] is True and ack["mode"] == "events"
    replay = ack["events"]["c1"]
    assert [e["event_seq"] for e in replay] == list(range(6, 109))
    assert {e["event"] for e in replay} == {"message:updated"}
    assert replay[0]["data"]["event_seq"] == 6 and replay[0]["data"]["conversation_id"] == "c1"
    assert ack["resync_required"] == {"c1": False}
    assert ack["has_more"] == {"c1": False}
    assert ack["errors"] == {}
    afters = [req.after_event_seq for name, req in stub.calls if name == "ListEvents"]
    assert afters == [5, 105]
    assert "sid1" in server.members("conv:t1:c1")


async def test_sync_events_mode_resync_and_errors(setup: tuple[Any, Any], h: Any) -> None:
    server, stub = setup
    stub.responses["ListEvents"] = [
        cpb.ListEventsResponse(resync_required=True),
        h.RpcError(grpc.StatusCode.NOT_FOUND, "conversation not found", "conversation_not_found"),
    ]
    ack = await emit(server, "sync", {"conversations": {"c1": 1, "c2": 0}, "mode": "events"})
    assert ack["ok"] is True
    assert ack["events"] == {"c1": []}
    assert ack["resync_required"] == {"c1": True}
    assert ack["errors"] == {
        "c2": {"code": "conversation_not_found", "message": "conversation not found"}
    }
    # Joined the room it may see, not the one it may not.
    assert "sid1" in server.members("conv:t1:c1")
    assert "sid1" not in server.members("conv:t1:c2")


async def test_sync_message_mode_is_still_the_default(setup: tuple[Any, Any], h: Any) -> None:
    server, stub = setup
    stub.responses["ListMessages"] = cpb.ListMessagesResponse(
        messages=[h.message(seq=4), h.message(id="m5", seq=5)], has_more=False
    )
    ack = await emit(server, "sync", {"conversations": {"c1": 3}})
    assert ack["ok"] is True
    assert [m["seq"] for m in ack["messages"]["c1"]] == [4, 5]
    assert stub.last("ListMessages").after_seq == 3
    assert not any(name == "ListEvents" for name, _ in stub.calls)
