"""REST routes over ASGI with the conversation service faked: each route calls
the right RPC with the right fields, and every bad input is a JSON 4xx."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest

from confab.conversation.v1 import conversation_pb2 as cpb
from confab.conversation.v1 import events_pb2 as ev
from confab_core import limits

pytestmark = pytest.mark.asyncio

C = "/conversations/c1"
M = f"{C}/messages/m1"


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    if code is not None:
        assert body["error"]["code"] == code, body


async def test_update_conversation_sets_only_given_fields(
    client: Any, conv_stub: Any, h: Any
) -> None:
    conv_stub.responses["UpdateConversation"] = cpb.UpdateConversationResponse(
        conversation=h.conversation(topic="")
    )
    resp = await client.patch(C, json={"topic": ""})
    assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == "c1"
    req = conv_stub.last("UpdateConversation")
    assert req.conversation_id == "c1"
    assert req.HasField("topic") and req.topic == ""
    assert not req.HasField("title") and not req.HasField("description")


async def test_archive_delete_join_leave(client: Any, conv_stub: Any, h: Any) -> None:
    conv_stub.responses["ArchiveConversation"] = cpb.ArchiveConversationResponse(
        conversation=h.conversation(archived=True)
    )
    conv_stub.responses["JoinConversation"] = cpb.JoinConversationResponse(
        conversation=h.conversation(my_role=cpb.MEMBER_ROLE_MEMBER)
    )
    resp = await client.post(f"{C}/archive")
    assert resp.status_code == 200 and resp.json()["archived"] is True
    resp = await client.delete(C)
    assert resp.status_code == 204 and resp.content == b""
    resp = await client.post(f"{C}/join")
    assert resp.status_code == 200 and resp.json()["my_role"] == "member"
    resp = await client.post(f"{C}/leave")
    assert resp.status_code == 204 and resp.content == b""
    names = [n for n, _ in conv_stub.calls]
    assert names == [
        "ArchiveConversation",
        "DeleteConversation",
        "JoinConversation",
        "LeaveConversation",
    ]
    assert all(req.conversation_id == "c1" for _, req in conv_stub.calls)


async def test_browse_channels(client: Any, conv_stub: Any, h: Any) -> None:
    conv_stub.responses["BrowseChannels"] = cpb.BrowseChannelsResponse(
        conversations=[h.conversation()]
    )
    resp = await client.get("/channels", params={"query": "gen", "limit": 5})
    assert resp.status_code == 200
    assert [c["id"] for c in resp.json()] == ["c1"]
    req = conv_stub.last("BrowseChannels")
    assert (req.query, req.limit) == ("gen", 5)
    resp = await client.get("/channels")
    assert (conv_stub.last("BrowseChannels").query, conv_stub.last("BrowseChannels").limit) == (
        "",
        50,
    )


async def test_members_add_remove_role(client: Any, conv_stub: Any, h: Any) -> None:
    conv_stub.responses["AddMembers"] = cpb.AddMembersResponse(added=[h.member("u2")])
    conv_stub.responses["UpdateMemberRole"] = cpb.UpdateMemberRoleResponse(
        member=h.member("u2", cpb.MEMBER_ROLE_ADMIN)
    )
    resp = await client.post(f"{C}/members", json={"user_ids": ["u2", "u3"], "role": "observer"})
    assert resp.status_code == 200
    assert [m["user_id"] for m in resp.json()["added"]] == ["u2"]
    req = conv_stub.last("AddMembers")
    assert list(req.user_ids) == ["u2", "u3"] and req.role == cpb.MEMBER_ROLE_OBSERVER
    await client.post(f"{C}/members", json={"user_ids": ["u4"]})
    assert conv_stub.last("AddMembers").role == cpb.MEMBER_ROLE_UNSPECIFIED

    resp = await client.delete(f"{C}/members/u2")
    assert resp.status_code == 204
    assert conv_stub.last("RemoveMember").user_id == "u2"

    resp = await client.patch(f"{C}/members/u2", json={"role": "admin"})
    assert resp.status_code == 200 and resp.json()["role"] == "admin"
    req = conv_stub.last("UpdateMemberRole")
    assert (req.user_id, req.role) == ("u2", cpb.MEMBER_ROLE_ADMIN)


async def test_edit_delete_react_thread(client: Any, conv_stub: Any, h: Any) -> None:
    conv_stub.responses["EditMessage"] = cpb.EditMessageResponse(
        message=h.message(text="<i>new</i>", edited_at=1_700_000_001)
    )
    conv_stub.responses["DeleteMessage"] = cpb.DeleteMessageResponse(
        message=h.message(text="", deleted=True)
    )
    conv_stub.responses["ToggleReaction"] = cpb.ToggleReactionResponse(
        message=h.message(reactions=[cpb.Reaction(emoji="👍", count=1, user_ids=["u1"])]),
        added=True,
    )
    conv_stub.responses["ListThread"] = cpb.ListThreadResponse(
        root=h.message(reply_count=1),
        replies=[h.message(id="m2", seq=2, thread_root_id="m1")],
        has_more=False,
    )
    resp = await client.patch(M, json={"text": "<i>new</i>"})
    assert resp.status_code == 200
    assert resp.json()["text_html"] == "&lt;i&gt;new&lt;/i&gt;"
    assert resp.json()["edited_at"]
    req = conv_stub.last("EditMessage")
    assert (req.conversation_id, req.message_id, req.text) == ("c1", "m1", "<i>new</i>")

    resp = await client.delete(M)
    assert resp.status_code == 200 and resp.json()["deleted"] is True

    resp = await client.post(f"{M}/reactions", json={"emoji": "👍"})
    assert resp.status_code == 200
    assert resp.json()["added"] is True
    assert resp.json()["message"]["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": ["u1"]}]
    assert conv_stub.last("ToggleReaction").emoji == "👍"

    resp = await client.get(f"{M}/thread", params={"after_seq": 1, "limit": 10})
    assert resp.status_code == 200
    body = resp.json()
    assert body["root"]["reply_count"] == 1
    assert [m["thread_root_id"] for m in body["replies"]] == ["m1"]
    req = conv_stub.last("ListThread")
    assert (req.root_message_id, req.after_seq, req.limit) == ("m1", 1, 10)


async def test_send_with_thread_root_and_file(client: Any, conv_stub: Any, h: Any) -> None:
    conv_stub.responses["SendMessage"] = cpb.SendMessageResponse(
        message=h.message(kind=cpb.MESSAGE_KIND_FILE), created=True
    )
    file = {"url": "https://f.example/x.png", "name": "x.png", "content_type": "image/png"}
    resp = await client.post(
        f"{C}/messages", json={"text": "", "file": file, "thread_root_id": "m0"}
    )
    assert resp.status_code == 201, resp.text
    req = conv_stub.last("SendMessage")
    assert req.kind == cpb.MESSAGE_KIND_FILE and req.thread_root_id == "m0"
    assert (req.file.url, req.file.name, req.file.content_type) == (
        "https://f.example/x.png",
        "x.png",
        "image/png",
    )


async def test_search(client: Any, conv_stub: Any, h: Any) -> None:
    conv_stub.responses["SearchMessages"] = cpb.SearchMessagesResponse(messages=[h.message()])
    resp = await client.get("/search/messages", params={"q": "hello", "conversation_id": "c1"})
    assert resp.status_code == 200
    assert [m["id"] for m in resp.json()["messages"]] == ["m1"]
    req = conv_stub.last("SearchMessages")
    assert (req.query, req.conversation_id, req.limit) == ("hello", "c1", 50)
    await client.get("/search/messages", params={"q": "x"})
    assert conv_stub.last("SearchMessages").conversation_id == ""


async def test_events_are_decoded_to_socket_shapes(client: Any, conv_stub: Any, h: Any) -> None:
    events = [
        h.event(4, message_created=ev.MessageCreated(message=h.message())),
        h.event(5, reaction_changed=ev.ReactionChanged(message_id="m1", emoji="x", added=True)),
        h.event(6, member_removed=ev.MemberRemoved(user_id="u2")),
    ]
    conv_stub.responses["ListEvents"] = cpb.ListEventsResponse(
        events=[e.SerializeToString() for e in events], has_more=True
    )
    resp = await client.get(f"{C}/events", params={"after_event_seq": 3, "limit": 3})
    assert resp.status_code == 200
    body = resp.json()
    assert body["has_more"] is True and body["resync_required"] is False
    assert [(e["event"], e["event_seq"]) for e in body["events"]] == [
        ("message:new", 4),
        ("reaction:updated", 5),
        ("member:removed", 6),
    ]
    assert body["events"][0]["data"]["id"] == "m1"
    assert all(e["data"]["event_seq"] == e["event_seq"] for e in body["events"])
    req = conv_stub.last("ListEvents")
    assert (req.after_event_seq, req.limit) == (3, 3)


async def test_events_resync_required(client: Any, conv_stub: Any) -> None:
    conv_stub.responses["ListEvents"] = cpb.ListEventsResponse(resync_required=True)
    body = (await client.get(f"{C}/events")).json()
    assert body == {"events": [], "has_more": False, "resync_required": True}


async def test_undecodable_or_foreign_events_are_a_502_not_a_leak(
    client: Any, conv_stub: Any, h: Any
) -> None:
    conv_stub.responses["ListEvents"] = cpb.ListEventsResponse(events=[b"\xff\xff\xff"])
    assert_error(await client.get(f"{C}/events"), 502, "bad_upstream_event")
    foreign = h.event(1, tenant="t2", conversation_deleted=ev.ConversationDeleted())
    conv_stub.responses["ListEvents"] = cpb.ListEventsResponse(events=[foreign.SerializeToString()])
    assert_error(await client.get(f"{C}/events"), 502, "bad_upstream_event")


BAD: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]] = [
    ("PATCH", C, {}, None),
    ("PATCH", C, {"title": "x" * 201}, None),
    ("PATCH", C, {"archived": True}, None),
    ("PATCH", "/conversations/" + "x" * 129, {"title": "t"}, None),
    ("POST", f"{C}/members", {"user_ids": []}, None),
    ("POST", f"{C}/members", {"user_ids": ["u"] * 1001}, None),
    ("POST", f"{C}/members", {"user_ids": ["u2"], "role": "god"}, None),
    ("PATCH", f"{C}/members/u2", {"role": "service"}, None),
    ("PATCH", f"{C}/members/" + "u" * 129, {"role": "admin"}, None),
    ("DELETE", f"{C}/members/" + "u" * 129, None, None),
    ("PATCH", M, {"text": ""}, None),
    ("PATCH", M, {"text": "x" * 4001}, None),
    ("PATCH", M, {"text": None}, None),
    ("PATCH", f"{C}/messages/" + "m" * 129, {"text": "t"}, None),
    ("DELETE", f"{C}/messages/" + "m" * 129, None, None),
    ("POST", f"{M}/reactions", {"emoji": ""}, None),
    ("POST", f"{M}/reactions", {"emoji": "x" * 65}, None),
    ("POST", f"{M}/reactions", {"emoji": ["👍"]}, None),
    (
        "POST",
        f"{C}/messages",
        {"text": "x", "file": {"url": "javascript:alert(1)", "name": "a"}},
        None,
    ),
    ("POST", f"{C}/messages", {"text": "x", "thread_root_id": "m" * 129}, None),
    ("GET", f"{M}/thread", None, {"after_seq": -1}),
    ("GET", f"{M}/thread", None, {"after_seq": 2**63}),
    ("GET", f"{M}/thread", None, {"limit": 0}),
    ("GET", f"{C}/messages", None, {"after_seq": 10**30}),
    ("POST", f"{C}/read", {"seq": 2**64}, None),
    ("GET", "/search/messages", None, None),
    ("GET", "/search/messages", None, {"q": ""}),
    ("GET", "/search/messages", None, {"q": "x" * 201}),
    ("GET", "/search/messages", None, {"q": "x", "conversation_id": "c" * 129}),
    ("GET", "/search/messages", None, {"q": "x", "limit": 101}),
    ("GET", "/channels", None, {"query": "x" * 201}),
    ("GET", "/channels", None, {"limit": "many"}),
    ("GET", f"{C}/events", None, {"after_event_seq": -1}),
    ("GET", f"{C}/events", None, {"after_event_seq": 2**63}),
    ("GET", f"{C}/events", None, {"limit": 1000}),
]


@pytest.mark.parametrize(("method", "path", "body", "params"), BAD)
async def test_bad_input_is_422_json_and_reaches_no_service(
    client: Any,
    conv_stub: Any,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    params: dict[str, Any] | None,
) -> None:
    resp = await client.request(method, path, json=body, params=params)
    assert_error(resp, 422, "invalid_request")
    assert conv_stub.calls == []


async def test_presence_refuses_more_ids_than_the_presence_service_takes(
    client: Any, conv_stub: Any
) -> None:
    ids = ",".join(f"u{i}" for i in range(limits.MAX_PRESENCE_IDS + 1))
    resp = await client.get("/presence", params={"user_ids": ids})
    assert_error(resp, 422, "too_many_user_ids")


async def test_non_json_and_wrong_types_are_422(client: Any, conv_stub: Any) -> None:
    resp = await client.patch(M, content=b"{oops", headers={"Content-Type": "application/json"})
    assert_error(resp, 422)
    resp = await client.post(f"{M}/reactions", json=["👍"])
    assert_error(resp, 422)
    assert conv_stub.calls == []


async def test_lone_surrogates_are_422_not_500(client: Any, conv_stub: Any, h: Any) -> None:
    conv_stub.responses["EditMessage"] = cpb.EditMessageResponse(message=h.message())
    resp = await client.patch(
        M, content=b'{"text": "a\\ud800"}', headers={"Content-Type": "application/json"}
    )
    assert_error(resp, 422)
    # Invalid UTF-8 in the query string and the path.
    resp = await client.get("/search/messages?q=%ED%A0%80%FF")
    assert resp.status_code < 500
    resp = await client.patch(f"{C}/messages/%ED%A0%80", json={"text": "x"})
    assert resp.status_code < 500


@pytest.mark.parametrize(
    ("status", "code", "http"),
    [
        (grpc.StatusCode.NOT_FOUND, "conversation_not_found", 404),
        (grpc.StatusCode.PERMISSION_DENIED, "not_author", 403),
        (grpc.StatusCode.FAILED_PRECONDITION, "conversation_archived", 409),
        (grpc.StatusCode.INVALID_ARGUMENT, "invalid_query", 422),
        (grpc.StatusCode.UNIMPLEMENTED, None, 502),
        (grpc.StatusCode.INTERNAL, None, 502),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "upstream_timeout", 503),
    ],
)
async def test_service_errors_keep_their_code(
    client: Any, conv_stub: Any, h: Any, status: grpc.StatusCode, code: str | None, http: int
) -> None:
    conv_stub.responses["EditMessage"] = h.RpcError(status, "nope", code)
    resp = await client.patch(M, json={"text": "x"})
    assert_error(resp, http, code)


async def test_an_unshowable_upstream_answer_is_502(client: Any, conv_stub: Any) -> None:
    # An empty message (kind unspecified) cannot be shown: a clean 502, not a 500.
    resp = await client.patch(M, json={"text": "x"})
    assert_error(resp, 502, "bad_upstream_response")


async def test_no_token_is_401(client: Any, conv_stub: Any) -> None:
    resp = await client.delete(C, headers={"Authorization": ""})
    assert_error(resp, 401, "missing_token")
    assert conv_stub.calls == []


async def test_an_assistant_conversation_names_its_agent(
    client: Any, conv_stub: Any, h: Any
) -> None:
    made = h.conversation()
    made.agent_id = "poet"
    conv_stub.responses["CreateConversation"] = cpb.CreateConversationResponse(
        conversation=made, created=True
    )
    resp = await client.post("/conversations", json={"kind": "ai_assistant", "agent_id": "poet"})
    assert resp.status_code in (200, 201), resp.text
    assert resp.json()["conversation"]["agent_id"] == "poet"
    assert conv_stub.last("CreateConversation").agent_id == "poet"
    conv_stub.responses["CreateConversation"] = h.RpcError(
        grpc.StatusCode.INVALID_ARGUMENT, "no such agent", "unknown_agent"
    )
    refused = await client.post(
        "/conversations", json={"kind": "ai_assistant", "agent_id": "nobody"}
    )
    assert_error(refused, 422, "unknown_agent")
    assert_error(
        await client.post("/conversations", json={"kind": "ai_assistant", "agent_id": ""}), 422
    )
