"""The messaging domain through public APIs only: REST, Socket.IO, on the real fleet.

Written against the proto contract (protos/confab/conversation/v1) and
docs/permissions.md; rules are the conversation service's, the gateway only
translates and fans out.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from .conftest import TENANT_A, TENANT_B

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

AGENT = {"roles": ["agent"]}
ADMIN = {"roles": ["tenant_admin"]}


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url}: {resp.text}"
    return resp.json() if resp.content else None


def err(resp: httpx.Response, status: int, code: str | None = None) -> None:
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url}: {resp.text}"
    body = resp.json()["error"]
    assert body["message"], body
    if code is not None:
        assert body["code"] == code, body


async def send(api: Any, conversation_id: str, text: str, **extra: Any) -> dict[str, Any]:
    body = {"text": text, "client_msg_id": uid("c"), **extra}
    resp = await api.client.post(f"/conversations/{conversation_id}/messages", json=body)
    return dict(ok(resp, 201)["message"])


async def barrier(api: Any, socket: Any) -> None:
    """Everything emitted to ``socket`` before now has arrived once this returns:
    a message in a conversation of the socket's own goes through the same pod
    and the same connection after it."""
    own = await api.create("group", [uid("nobody")])
    mine = await send(api, own["id"], "barrier")
    await socket.wait_for("message:new", lambda m: m["id"] == mine["id"])


async def test_edit_is_author_only_and_fans_out_message_updated(users, sockets) -> None:
    alice, bob = uid("alice"), uid("bob")
    api, bob_api = users(TENANT_A, alice), users(TENANT_A, bob)
    conv = await api.create("group", [bob], "edits")
    bob_socket = await sockets(TENANT_A, bob)
    sent = await send(api, conv["id"], "helo <b>world</b>")
    new = await bob_socket.wait_for("message:new", lambda m: m["id"] == sent["id"])
    assert new["event_seq"] > 0 and new["conversation_id"] == conv["id"]
    assert new["text_html"] == "helo &lt;b&gt;world&lt;/b&gt;"

    path = f"/conversations/{conv['id']}/messages/{sent['id']}"
    edited = ok(await api.client.patch(path, json={"text": "hello <b>world</b>"}))
    assert edited["text"] == "hello <b>world</b>"
    assert edited["text_html"] == "hello &lt;b&gt;world&lt;/b&gt;"
    assert edited["edited_at"] is not None and edited["seq"] == sent["seq"]
    got = await bob_socket.wait_for(
        "message:updated", lambda m: m["id"] == sent["id"] and m["text"] == "hello <b>world</b>"
    )
    assert got["edited_at"] and got["event_seq"] > new["event_seq"]

    # Bob may not edit Alice's message; nothing changes.
    err(await bob_api.client.patch(path, json={"text": "bob was here"}), 403)
    # Over the socket too, with an ack.
    ack = await bob_socket.call(
        "message:edit",
        {"conversation_id": conv["id"], "message_id": sent["id"], "text": "bob again"},
    )
    assert ack["ok"] is False and ack["error"]["code"]
    page = ok(await api.client.get(f"/conversations/{conv['id']}/messages"))
    assert [m["text"] for m in page["messages"]] == ["hello <b>world</b>"]

    alice_socket = await sockets(TENANT_A, alice)
    ack = await alice_socket.call(
        "message:edit",
        {"conversation_id": conv["id"], "message_id": sent["id"], "text": "final"},
    )
    assert ack["ok"] is True and ack["message"]["text"] == "final"
    await bob_socket.wait_for(
        "message:updated", lambda m: m["id"] == sent["id"] and m["text"] == "final"
    )


async def test_delete_leaves_a_tombstone_and_fans_out(users, sockets) -> None:
    alice, bob = uid("alice"), uid("bob")
    api, bob_api = users(TENANT_A, alice), users(TENANT_A, bob)
    conv = await api.create("group", [bob], "deletes")
    bob_socket = await sockets(TENANT_A, bob)
    first = await send(api, conv["id"], "oops, wrong chat")
    second = await send(api, conv["id"], "stays")

    # A plain member may not delete someone else's message.
    err(await bob_api.client.delete(f"/conversations/{conv['id']}/messages/{first['id']}"), 403)
    tomb = ok(await api.client.delete(f"/conversations/{conv['id']}/messages/{first['id']}"))
    assert tomb["deleted"] is True
    assert tomb["text"] == "" and tomb["text_html"] == ""
    assert tomb["seq"] == first["seq"]
    got = await bob_socket.wait_for("message:deleted", lambda m: m["id"] == first["id"])
    assert got["deleted"] is True and got["text"] == "" and got["event_seq"] > 0

    page = ok(await bob_api.client.get(f"/conversations/{conv['id']}/messages"))
    assert [(m["seq"], m["deleted"]) for m in page["messages"]] == [
        (first["seq"], True),
        (second["seq"], False),
    ]
    # Over the socket: the author deletes the other one.
    alice_socket = await sockets(TENANT_A, alice)
    ack = await alice_socket.call(
        "message:delete", {"conversation_id": conv["id"], "message_id": second["id"]}
    )
    assert ack["ok"] is True and ack["message"]["deleted"] is True


async def test_reaction_toggle_counts_and_fans_out(users, sockets) -> None:
    alice, bob = uid("alice"), uid("bob")
    api, bob_api = users(TENANT_A, alice), users(TENANT_A, bob)
    conv = await api.create("group", [bob], "reactions")
    alice_socket = await sockets(TENANT_A, alice)
    sent = await send(api, conv["id"], "react to me")
    path = f"/conversations/{conv['id']}/messages/{sent['id']}/reactions"

    first = ok(await bob_api.client.post(path, json={"emoji": "👍"}))
    assert first["added"] is True
    assert first["message"]["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [bob]}]
    second = ok(await api.client.post(path, json={"emoji": "👍"}))
    assert second["added"] is True
    [thumbs] = second["message"]["reactions"]
    assert thumbs["count"] == 2 and set(thumbs["user_ids"]) == {alice, bob}

    again = ok(await bob_api.client.post(path, json={"emoji": "👍"}))
    assert again["added"] is False
    assert again["message"]["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [alice]}]

    seen = await alice_socket.wait_for(
        "reaction:updated", lambda r: r["message_id"] == sent["id"] and r["added"] is False
    )
    assert seen["user_id"] == bob and seen["emoji"] == "👍"
    assert seen["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [alice]}]
    updates = alice_socket.received("reaction:updated", lambda r: r["message_id"] == sent["id"])
    assert [r["added"] for r in updates] == [True, True, False]
    seqs = [r["event_seq"] for r in updates]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3

    ack = await alice_socket.call(
        "reaction:toggle",
        {"conversation_id": conv["id"], "message_id": sent["id"], "emoji": "🎉"},
    )
    assert ack["ok"] is True and ack["added"] is True
    assert {r["emoji"] for r in ack["message"]["reactions"]} == {"👍", "🎉"}
    err(await api.client.post(path, json={"emoji": ""}), 422, "invalid_request")
    err(await api.client.post(path, json={"emoji": "x" * 65}), 422, "invalid_request")


async def test_thread_reply_updates_the_root(users, sockets) -> None:
    alice, bob = uid("alice"), uid("bob")
    api, bob_api = users(TENANT_A, alice), users(TENANT_A, bob)
    conv = await api.create("group", [bob], "threads")
    alice_socket = await sockets(TENANT_A, alice)
    root = await send(api, conv["id"], "what do we think?")
    reply = await send(bob_api, conv["id"], "looks good", thread_root_id=root["id"])
    assert reply["thread_root_id"] == root["id"]

    updated = await alice_socket.wait_for(
        "message:updated", lambda m: m["id"] == root["id"] and m["reply_count"] == 1
    )
    assert updated["last_reply_at"] is not None
    thread = ok(await api.client.get(f"/conversations/{conv['id']}/messages/{root['id']}/thread"))
    assert thread["root"]["id"] == root["id"] and thread["root"]["reply_count"] == 1
    assert [m["id"] for m in thread["replies"]] == [reply["id"]]
    assert thread["has_more"] is False


async def test_browse_join_receive_then_leave(users, sockets) -> None:
    agent, carol = uid("agent"), uid("carol")
    agent_api, carol_api = users(TENANT_A, agent, **AGENT), users(TENANT_A, carol)
    title = uid("lobby")
    channel = await agent_api.create("public_channel", [], title)
    carol_socket = await sockets(TENANT_A, carol)

    found = ok(await carol_api.client.get("/channels", params={"query": title}))
    assert [c["id"] for c in found] == [channel["id"]]
    joined = ok(await carol_api.client.post(f"/conversations/{channel['id']}/join"))
    assert joined["id"] == channel["id"] and joined["my_role"] == "member"
    notice = await carol_socket.wait_for(
        "conversation:joined", lambda e: e["conversation_id"] == channel["id"]
    )
    assert notice["user_id"] == carol
    members = ok(await agent_api.client.get(f"/conversations/{channel['id']}/members"))
    assert carol in {m["user_id"] for m in members}

    hello = await send(agent_api, channel["id"], "welcome, carol")
    await carol_socket.wait_for("message:new", lambda m: m["id"] == hello["id"])

    resp = await carol_api.client.post(f"/conversations/{channel['id']}/leave")
    assert resp.status_code == 204, resp.text
    removed = await carol_socket.wait_for(
        "conversation:removed", lambda e: e["conversation_id"] == channel["id"]
    )
    assert removed["left"] is True
    after = await send(agent_api, channel["id"], "carol has gone")
    await barrier(carol_api, carol_socket)
    assert carol_socket.received("message:new", lambda m: m["id"] == after["id"]) == []
    members = ok(await agent_api.client.get(f"/conversations/{channel['id']}/members"))
    assert carol not in {m["user_id"] for m in members}


async def test_join_is_for_channels_only(users) -> None:
    alice, eve, boss = uid("alice"), uid("eve"), uid("boss")
    group = await users(TENANT_A, alice).create("group", [uid("bob")], "closed")
    # Eve cannot see the group at all: not even its existence is disclosed.
    err(await users(TENANT_A, eve).client.post(f"/conversations/{group['id']}/join"), 404)
    # A tenant admin sees it, but a group is joined by being added, not by joining.
    admin = users(TENANT_A, boss, **ADMIN)
    err(await admin.client.post(f"/conversations/{group['id']}/join"), 403, "not_joinable")


async def test_add_and_remove_members_move_sockets(users, sockets) -> None:
    alice, bob, dave = uid("alice"), uid("bob"), uid("dave")
    api, dave_api = users(TENANT_A, alice), users(TENANT_A, dave)
    conv = await api.create("group", [bob], "members")
    bob_socket = await sockets(TENANT_A, bob)
    dave_socket = await sockets(TENANT_A, dave)

    added = ok(
        await api.client.post(f"/conversations/{conv['id']}/members", json={"user_ids": [dave]})
    )
    assert [m["user_id"] for m in added["added"]] == [dave]
    joined = await dave_socket.wait_for(
        "conversation:joined", lambda e: e["conversation_id"] == conv["id"]
    )
    assert joined["user_id"] == dave
    seen = await bob_socket.wait_for("member:added", lambda e: e["conversation_id"] == conv["id"])
    assert [m["user_id"] for m in seen["members"]] == [dave]
    # Dave's socket is now in the room without asking.
    hello = await send(api, conv["id"], "hi dave")
    await dave_socket.wait_for("message:new", lambda m: m["id"] == hello["id"])

    role = ok(
        await api.client.patch(
            f"/conversations/{conv['id']}/members/{dave}", json={"role": "observer"}
        )
    )
    assert role["role"] == "observer"
    await bob_socket.wait_for(
        "member:updated",
        lambda e: e["member"]["user_id"] == dave and e["member"]["role"] == "observer",
    )
    err(
        await dave_api.client.post(
            f"/conversations/{conv['id']}/messages",
            json={"text": "can I?", "client_msg_id": uid("c")},
        ),
        403,
        "observer_cannot_send",
    )

    resp = await api.client.delete(f"/conversations/{conv['id']}/members/{dave}")
    assert resp.status_code == 204, resp.text
    removed = await dave_socket.wait_for(
        "conversation:removed", lambda e: e["conversation_id"] == conv["id"]
    )
    assert removed["left"] is False
    await bob_socket.wait_for(
        "member:removed", lambda e: e["conversation_id"] == conv["id"] and e["user_id"] == dave
    )
    secret = await send(api, conv["id"], "now that dave is gone")
    await bob_socket.wait_for("message:new", lambda m: m["id"] == secret["id"])
    await barrier(dave_api, dave_socket)
    assert dave_socket.received("message:new", lambda m: m["id"] == secret["id"]) == []
    err(await dave_api.client.get(f"/conversations/{conv['id']}"), 404, "conversation_not_found")


async def test_update_then_archive_makes_it_read_only(users, sockets) -> None:
    alice, bob = uid("alice"), uid("bob")
    api, bob_api = users(TENANT_A, alice), users(TENANT_A, bob)
    conv = await api.create("group", [bob], "before")
    bob_socket = await sockets(TENANT_A, bob)
    sent = await send(api, conv["id"], "last words")

    updated = ok(
        await api.client.patch(
            f"/conversations/{conv['id']}", json={"title": "after", "topic": "launch"}
        )
    )
    assert (updated["title"], updated["topic"]) == ("after", "launch")
    await bob_socket.wait_for(
        "conversation:updated", lambda c: c["id"] == conv["id"] and c["title"] == "after"
    )
    # A plain member is not a conversation admin.
    err(await bob_api.client.patch(f"/conversations/{conv['id']}", json={"title": "mine"}), 403)

    archived = ok(await api.client.post(f"/conversations/{conv['id']}/archive"))
    assert archived["archived"] is True
    await bob_socket.wait_for(
        "conversation:updated", lambda c: c["id"] == conv["id"] and c["archived"] is True
    )
    err(
        await bob_api.client.post(
            f"/conversations/{conv['id']}/messages",
            json={"text": "anyone?", "client_msg_id": uid("c")},
        ),
        409,
        "conversation_archived",
    )
    err(
        await api.client.patch(
            f"/conversations/{conv['id']}/messages/{sent['id']}", json={"text": "edit"}
        ),
        409,
        "conversation_archived",
    )
    err(
        await bob_api.client.post(
            f"/conversations/{conv['id']}/messages/{sent['id']}/reactions", json={"emoji": "👍"}
        ),
        409,
        "conversation_archived",
    )
    # Reads still work.
    page = ok(await bob_api.client.get(f"/conversations/{conv['id']}/messages"))
    assert [m["id"] for m in page["messages"]] == [sent["id"]]


async def test_only_a_tenant_admin_deletes_and_then_it_is_gone(users, sockets) -> None:
    alice, bob, boss = uid("alice"), uid("bob"), uid("boss")
    api, bob_api = users(TENANT_A, alice), users(TENANT_A, bob)
    admin = users(TENANT_A, boss, **ADMIN)
    conv = await api.create("group", [bob], "doomed")
    bob_socket = await sockets(TENANT_A, bob)
    await send(api, conv["id"], "soon gone")

    # The owner is not enough.
    err(await api.client.delete(f"/conversations/{conv['id']}"), 403)
    resp = await admin.client.delete(f"/conversations/{conv['id']}")
    assert resp.status_code == 204, resp.text
    await bob_socket.wait_for("conversation:deleted", lambda e: e["conversation_id"] == conv["id"])
    for who in (api, bob_api, admin):
        err(await who.client.get(f"/conversations/{conv['id']}"), 404, "conversation_not_found")
        err(
            await who.client.get(f"/conversations/{conv['id']}/messages"),
            404,
            "conversation_not_found",
        )
    listed = ok(await bob_api.client.get("/conversations"))["conversations"]
    assert conv["id"] not in {c["id"] for c in listed}


async def test_search_finds_a_word_only_in_the_callers_tenant(users) -> None:
    alice, bob = uid("alice"), uid("bob")
    word = f"quokka{uuid.uuid4().hex[:10]}"
    api = users(TENANT_A, alice)
    conv = await api.create("group", [bob], "search")
    hit = await send(api, conv["id"], f"the {word} jumped over the fence")
    await send(api, conv["id"], "nothing to see here")
    other = users(TENANT_B, alice)  # the same user id, in the other tenant
    theirs = await other.create("group", [bob], "search")
    foreign = await send(other, theirs["id"], f"a {word} in tenant B")

    found = ok(await api.client.get("/search/messages", params={"q": word}))
    assert [m["id"] for m in found["messages"]] == [hit["id"]]
    scoped = ok(
        await api.client.get("/search/messages", params={"q": word, "conversation_id": conv["id"]})
    )
    assert [m["id"] for m in scoped["messages"]] == [hit["id"]]
    missing = ok(await api.client.get("/search/messages", params={"q": uid("absent")}))
    assert missing["messages"] == []
    found_b = ok(await other.client.get("/search/messages", params={"q": word}))
    assert [m["id"] for m in found_b["messages"]] == [foreign["id"]]
    err(await api.client.get("/search/messages", params={"q": ""}), 422, "invalid_request")


async def test_events_replay_over_rest_and_sync(users, sockets) -> None:
    alice, bob = uid("alice"), uid("bob")
    api, bob_api = users(TENANT_A, alice), users(TENANT_A, bob)
    conv = await api.create("group", [bob], "replay")
    start = ok(await bob_api.client.get(f"/conversations/{conv['id']}"))["last_event_seq"]
    sent = await send(api, conv["id"], "v1")
    ok(
        await api.client.patch(
            f"/conversations/{conv['id']}/messages/{sent['id']}", json={"text": "v2"}
        )
    )
    ok(
        await bob_api.client.post(
            f"/conversations/{conv['id']}/messages/{sent['id']}/reactions", json={"emoji": "👀"}
        )
    )
    page = ok(
        await bob_api.client.get(
            f"/conversations/{conv['id']}/events", params={"after_event_seq": start}
        )
    )
    assert page["resync_required"] is False
    names = [e["event"] for e in page["events"]]
    assert names == ["message:new", "message:updated", "reaction:updated"], names
    seqs = [e["event_seq"] for e in page["events"]]
    assert seqs == list(range(start + 1, start + 4))
    assert all(e["data"]["event_seq"] == e["event_seq"] for e in page["events"])
    assert page["events"][1]["data"]["text"] == "v2"

    bob_socket = await sockets(TENANT_A, bob)
    ack = await bob_socket.call(
        "sync", {"conversations": {conv["id"]: start + 1}, "mode": "events"}
    )
    assert ack["ok"] is True, ack
    assert [e["event"] for e in ack["events"][conv["id"]]] == [
        "message:updated",
        "reaction:updated",
    ]
    assert ack["resync_required"] == {conv["id"]: False}
    # The message-seq mode is unchanged and still the default.
    ack = await bob_socket.call("sync", {"conversations": {conv["id"]: 0}})
    assert [m["id"] for m in ack["messages"][conv["id"]]] == [sent["id"]]
    # And the socket is in the room afterwards: it hears what comes next.
    later = await send(api, conv["id"], "live again")
    got = await bob_socket.wait_for("message:new", lambda m: m["id"] == later["id"])
    assert got["event_seq"] == start + 4


async def test_conversation_update_over_the_socket(users, sockets) -> None:
    alice, bob = uid("alice"), uid("bob")
    conv = await users(TENANT_A, alice).create("group", [bob], "socket-update")
    alice_socket = await sockets(TENANT_A, alice)
    bob_socket = await sockets(TENANT_A, bob)
    ack = await alice_socket.call(
        "conversation:update", {"conversation_id": conv["id"], "description": "via socket"}
    )
    assert ack["ok"] is True and ack["conversation"]["description"] == "via socket"
    await bob_socket.wait_for(
        "conversation:updated",
        lambda c: c["id"] == conv["id"] and c["description"] == "via socket",
    )
    bad = await alice_socket.call("conversation:update", {"conversation_id": conv["id"]})
    assert bad["ok"] is False and bad["error"]["code"] == "invalid_request"


async def test_other_tenant_gets_404_everywhere_and_hears_nothing(users, sockets) -> None:
    alice, bob = uid("alice"), uid("bob")
    owner = users(TENANT_A, alice, **AGENT)
    channel = await owner.create("public_channel", [bob], uid("tenant-a-channel"))
    cid = channel["id"]
    word = f"wombat{uuid.uuid4().hex[:8]}"
    msg = await send(owner, cid, f"tenant A {word}")
    mid = msg["id"]
    # The intruder has bob's user id and is an admin, but of tenant B.
    intruder = users(TENANT_B, bob, **ADMIN)
    intruder_socket = await sockets(TENANT_B, bob, **ADMIN)
    bob_socket = await sockets(TENANT_A, bob)

    table: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]] = [
        ("PATCH", f"/conversations/{cid}", {"title": "pwned"}, None),
        ("POST", f"/conversations/{cid}/archive", None, None),
        ("DELETE", f"/conversations/{cid}", None, None),
        ("POST", f"/conversations/{cid}/join", None, None),
        ("POST", f"/conversations/{cid}/leave", None, None),
        ("POST", f"/conversations/{cid}/members", {"user_ids": [bob]}, None),
        ("DELETE", f"/conversations/{cid}/members/{alice}", None, None),
        ("PATCH", f"/conversations/{cid}/members/{alice}", {"role": "observer"}, None),
        ("PATCH", f"/conversations/{cid}/messages/{mid}", {"text": "pwned"}, None),
        ("DELETE", f"/conversations/{cid}/messages/{mid}", None, None),
        ("POST", f"/conversations/{cid}/messages/{mid}/reactions", {"emoji": "💀"}, None),
        ("GET", f"/conversations/{cid}/messages/{mid}/thread", None, None),
        ("GET", f"/conversations/{cid}/events", None, None),
        ("GET", "/search/messages", None, {"q": word, "conversation_id": cid}),
        (
            "POST",
            f"/conversations/{cid}/messages",
            {"text": "reply", "thread_root_id": mid, "client_msg_id": uid("c")},
            None,
        ),
        (
            "POST",
            f"/conversations/{cid}/messages",
            {
                "text": "",
                "client_msg_id": uid("c"),
                "file": {"url": "https://evil.example/x", "name": "x"},
            },
            None,
        ),
    ]
    failures = []
    for method, path, body, params in table:
        resp = await intruder.client.request(method, path, json=body, params=params)
        got = (resp.status_code, resp.json().get("error", {}).get("code"))
        if got != (404, "conversation_not_found"):
            failures.append((method, path, got, resp.text[:200]))
    assert failures == []

    # Tenant-wide reads show nothing of tenant A.
    assert ok(await intruder.client.get("/search/messages", params={"q": word})) == {"messages": []}
    browsed = ok(await intruder.client.get("/channels"))
    assert cid not in {c["id"] for c in browsed}

    # Socket writes and the event replay are refused the same way.
    for event, data in [
        ("message:edit", {"conversation_id": cid, "message_id": mid, "text": "x"}),
        ("message:delete", {"conversation_id": cid, "message_id": mid}),
        ("reaction:toggle", {"conversation_id": cid, "message_id": mid, "emoji": "💀"}),
        ("conversation:update", {"conversation_id": cid, "title": "x"}),
    ]:
        ack = await intruder_socket.call(event, data)
        assert ack["ok"] is False and ack["error"]["code"] == "conversation_not_found", (event, ack)
    ack = await intruder_socket.call("sync", {"conversations": {cid: 0}, "mode": "events"})
    assert ack["events"] == {} and ack["errors"][cid]["code"] == "conversation_not_found"

    # Tenant A's conversation is untouched.
    after = ok(await owner.client.get(f"/conversations/{cid}"))
    assert after["title"] == channel["title"] and after["archived"] is False
    page = ok(await owner.client.get(f"/conversations/{cid}/messages"))
    assert [(m["id"], m["text"], m["reactions"]) for m in page["messages"]] == [
        (mid, msg["text"], [])
    ]

    # Tenant A keeps working, with every kind of event, while B listens.
    owner_socket = await sockets(TENANT_A, alice, **AGENT)
    ok(await owner.client.patch(f"/conversations/{cid}/messages/{mid}", json={"text": "v2"}))
    ok(
        await owner.client.post(
            f"/conversations/{cid}/messages/{mid}/reactions", json={"emoji": "👍"}
        )
    )
    ok(await owner.client.patch(f"/conversations/{cid}", json={"topic": "tenant A only"}))
    newcomer = uid("newcomer")
    ok(await owner.client.post(f"/conversations/{cid}/members", json={"user_ids": [newcomer]}))
    resp = await owner.client.delete(f"/conversations/{cid}/members/{newcomer}")
    assert resp.status_code == 204, resp.text
    last = await send(owner, cid, "tenant A, last")
    await bob_socket.wait_for("message:new", lambda m: m["id"] == last["id"])
    await owner_socket.wait_for("message:new", lambda m: m["id"] == last["id"])
    await barrier(intruder, intruder_socket)
    leaked = [(name, data) for name, data in intruder_socket.events if cid in repr(data)]
    assert leaked == []


async def test_socket_events_carry_event_seq_in_order(users, sockets) -> None:
    alice, bob = uid("alice"), uid("bob")
    api = users(TENANT_A, alice)
    conv = await api.create("group", [bob], "ordering")
    bob_socket = await sockets(TENANT_A, bob)
    sent = [await send(api, conv["id"], f"n{i}") for i in range(3)]
    ok(
        await api.client.patch(
            f"/conversations/{conv['id']}/messages/{sent[0]['id']}", json={"text": "n0'"}
        )
    )
    await bob_socket.wait_for("message:updated", lambda m: m["id"] == sent[0]["id"])
    mine = [
        (name, data)
        for name, data in bob_socket.events
        if isinstance(data, dict) and data.get("conversation_id") == conv["id"]
    ]
    seqs = [data["event_seq"] for _, data in mine]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), mine
    assert [name for name, _ in mine][-4:] == [
        "message:new",
        "message:new",
        "message:new",
        "message:updated",
    ]
    await asyncio.sleep(0)


async def test_the_conversation_list_pages_with_a_cursor(users) -> None:
    alice, bob = uid("alice"), uid("bob")
    api, bob_api = users(TENANT_A, alice), users(TENANT_A, bob)
    made = {(await api.create("group", [bob], f"c{i}"))["id"] for i in range(5)}
    seen: list[str] = []
    cursor = ""
    for _ in range(5):
        page = ok(await bob_api.client.get("/conversations", params={"limit": 2, "cursor": cursor}))
        seen += [c["id"] for c in page["conversations"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5 and set(seen) == made
    # Another user's cursor, or a mangled one, is refused with a stable code.
    first = ok(await bob_api.client.get("/conversations", params={"limit": 1}))
    for who, bad in ((api, first["next_cursor"]), (bob_api, "not-a-cursor")):
        err(await who.client.get("/conversations", params={"cursor": bad}), 422, "invalid_cursor")
