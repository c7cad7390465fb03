"""Fan-out of every domain event: socket events, and the room changes they make."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from confab.conversation.v1 import conversation_pb2 as cpb
from confab.conversation.v1 import events_pb2 as ev
from confab.presence.v1 import events_pb2 as pev
from confab.presence.v1 import presence_pb2 as ppb
from confab_core.clock import FakeClock
from confab_core.kafka import PRESENCE_EVENTS_TOPIC
from gateway.realtime.fanout import Fanout

pytestmark = pytest.mark.asyncio

ROOM = "conv:t1:c1"


@pytest.fixture
def server(h: Any) -> Any:
    srv = h.RoomServer()
    # u1 has two sockets on this pod, u2 one, u3 none; s1..s3 are in the room.
    for sid, user in (("s1", "u1"), ("s2", "u1"), ("s3", "u2"), ("s9", "u9")):
        srv.rooms.setdefault(f"user:t1:{user}", set()).add(sid)
    srv.rooms[ROOM] = {"s1", "s2", "s3"}
    return srv


async def feed(server: Any, h: Any, *events: ev.ConversationEvent) -> Fanout:
    fanout = Fanout(server, h.opener())
    for event in events:
        await fanout.handle(h.record(event))
    return fanout


def assert_resumable(server: Any) -> None:
    for name, data, _ in server.emits:
        assert data["conversation_id"] == "c1", name
        assert isinstance(data["event_seq"], int) and data["event_seq"] > 0, name


async def test_message_new_carries_event_seq(server: Any, h: Any) -> None:
    await feed(server, h, h.event(5, message_created=ev.MessageCreated(message=h.message())))
    [(data, room)] = server.emitted("message:new")
    assert room == ROOM
    assert data["id"] == "m1" and data["seq"] == 1 and data["event_seq"] == 5
    assert data["text_html"] == "hello"


async def test_message_updated_and_deleted(server: Any, h: Any) -> None:
    edited = h.message(text="fixed <b>", edited_at=1_700_000_500)
    tomb = h.message(text="", deleted=True)
    await feed(
        server,
        h,
        h.event(2, message_updated=ev.MessageUpdated(message=edited)),
        h.event(3, message_deleted=ev.MessageDeleted(message=tomb)),
    )
    assert [(e, r) for e, _, r in server.emits] == [
        ("message:updated", ROOM),
        ("message:deleted", ROOM),
    ]
    (upd, _), (dele, _) = server.emitted("message:updated") + server.emitted("message:deleted")
    assert upd["text"] == "fixed <b>" and upd["text_html"] == "fixed &lt;b&gt;"
    assert upd["edited_at"] is not None and upd["event_seq"] == 2
    assert dele["deleted"] is True and dele["text"] == "" and dele["event_seq"] == 3
    assert_resumable(server)


async def test_thread_reply_count_arrives_as_message_updated(server: Any, h: Any) -> None:
    root = h.message(reply_count=1, last_reply_at=1_700_000_900)
    await feed(server, h, h.event(4, message_updated=ev.MessageUpdated(message=root)))
    [(data, room)] = server.emitted("message:updated")
    assert room == ROOM and data["reply_count"] == 1 and data["last_reply_at"]


async def test_reaction_updated(server: Any, h: Any) -> None:
    change = ev.ReactionChanged(
        message_id="m1",
        emoji="👍",
        user_id="u2",
        added=False,
        reactions=[cpb.Reaction(emoji="🎉", count=1, user_ids=["u1"])],
    )
    await feed(server, h, h.event(6, reaction_changed=change))
    [(data, room)] = server.emitted("reaction:updated")
    assert room == ROOM
    assert data == {
        "conversation_id": "c1",
        "event_seq": 6,
        "actor_id": "u1",
        "message_id": "m1",
        "emoji": "👍",
        "user_id": "u2",
        "added": False,
        "reactions": [{"emoji": "🎉", "count": 1, "user_ids": ["u1"]}],
    }


async def test_conversation_updated(server: Any, h: Any) -> None:
    conv = h.conversation(title="new name", topic="today", archived=True)
    await feed(
        server, h, h.event(8, conversation_updated=ev.ConversationUpdated(conversation=conv))
    )
    [(data, room)] = server.emitted("conversation:updated")
    assert room == ROOM
    assert data["id"] == "c1" and data["title"] == "new name" and data["archived"] is True
    assert_resumable(server)


async def test_members_added_enter_the_room_then_hear_of_it(server: Any, h: Any) -> None:
    server.rooms[ROOM] = {"s3"}  # u1 is the one being added
    added = ev.MembersAdded(members=[h.member("u1"), h.member("u3", cpb.MEMBER_ROLE_OBSERVER)])
    await feed(server, h, h.event(9, members_added=added))
    # Both of u1's sockets joined; u3 has no socket here, nothing to join.
    assert server.members(ROOM) == {"s1", "s2", "s3"}
    [(data, room)] = server.emitted("member:added")
    assert room == ROOM
    assert [m["user_id"] for m in data["members"]] == ["u1", "u3"]
    joined = server.emitted("conversation:joined")
    assert [(d["user_id"], d["role"], r) for d, r in joined] == [
        ("u1", "member", "user:t1:u1"),
        ("u3", "observer", "user:t1:u3"),
    ]
    assert all(d["conversation_id"] == "c1" and d["event_seq"] == 9 for d, _ in joined)
    # The room was entered before member:added went out: the added user hears it.
    assert server.reached("member:added") == [{"s1", "s2", "s3"}]


async def test_member_role_changed(server: Any, h: Any) -> None:
    change = ev.MemberRoleChanged(member=h.member("u2", cpb.MEMBER_ROLE_OWNER))
    await feed(server, h, h.event(13, member_role_changed=change))
    [(data, room)] = server.emitted("member:updated")
    assert room == ROOM
    assert data["member"]["user_id"] == "u2" and data["member"]["role"] == "owner"
    assert server.members(ROOM) == {"s1", "s2", "s3"}
    assert_resumable(server)


async def test_member_removed_leaves_the_room(server: Any, h: Any) -> None:
    await feed(server, h, h.event(10, member_removed=ev.MemberRemoved(user_id="u1", left=False)))
    assert server.members(ROOM) == {"s3"}
    assert [(e, r) for e, _, r in server.emits] == [
        ("member:removed", ROOM),
        ("conversation:removed", "user:t1:u1"),
    ]
    (removed, _), (notice, _) = server.emitted("member:removed") + server.emitted(
        "conversation:removed"
    )
    # The removed user hears member:removed before the room is left.
    assert server.reached("member:removed") == [{"s1", "s2", "s3"}]
    assert server.reached("conversation:removed") == [{"s1", "s2"}]
    assert removed["user_id"] == "u1" and removed["left"] is False
    assert notice == {
        "conversation_id": "c1",
        "event_seq": 10,
        "actor_id": "u1",
        "user_id": "u1",
        "left": False,
    }
    assert_resumable(server)


async def test_removed_member_hears_no_later_message(server: Any, h: Any) -> None:
    await feed(
        server,
        h,
        h.event(1, member_removed=ev.MemberRemoved(user_id="u2", left=True)),
        h.event(2, message_created=ev.MessageCreated(message=h.message())),
    )
    assert "s3" not in server.members(ROOM)
    [(_, room)] = server.emitted("message:new")
    assert room == ROOM
    assert server.reached("message:new") == [{"s1", "s2"}]


async def test_conversation_deleted_emits_then_clears_the_room(server: Any, h: Any) -> None:
    await feed(server, h, h.event(11, conversation_deleted=ev.ConversationDeleted()))
    [(data, room)] = server.emitted("conversation:deleted")
    assert room == ROOM
    assert data == {"conversation_id": "c1", "event_seq": 11, "actor_id": "u1"}
    assert server.reached("conversation:deleted") == [{"s1", "s2", "s3"}]
    assert server.closed == [ROOM]
    assert server.members(ROOM) == set()


async def test_conversation_created_joins_members_and_carries_event_seq(
    server: Any, h: Any
) -> None:
    server.rooms.pop(ROOM)
    created = ev.ConversationCreated(conversation=h.conversation(), member_ids=["u1", "u2"])
    await feed(server, h, h.event(1, conversation_created=created))
    assert server.members(ROOM) == {"s1", "s2", "s3"}
    rooms = [r for _, r in server.emitted("conversation:created")]
    assert rooms == ["user:t1:u1", "user:t1:u2"]
    assert server.reached("conversation:created") == [{"s1", "s2"}, {"s3"}]
    assert_resumable(server)


async def test_receipt_carries_event_seq(server: Any, h: Any) -> None:
    marker = ev.ReadMarkerChanged(user_id="u2", last_read_seq=3)
    await feed(server, h, h.event(12, read_marker_changed=marker))
    [(data, room)] = server.emitted("receipt:updated")
    assert room == ROOM and data["event_seq"] == 12 and data["last_read_seq"] == 3


async def test_repeats_of_new_kinds_are_dropped_and_do_not_redo_room_changes(
    server: Any, h: Any
) -> None:
    removed = h.event(3, member_removed=ev.MemberRemoved(user_id="u1"))
    added = h.event(4, members_added=ev.MembersAdded(members=[h.member("u1")]))
    reaction = h.event(5, reaction_changed=ev.ReactionChanged(message_id="m1", emoji="x"))
    # The relay re-publishes after a crash: u1 must stay in the room.
    await feed(server, h, removed, added, reaction, removed, added, reaction)
    assert [e for e, _, _ in server.emits] == [
        "member:removed",
        "conversation:removed",
        "member:added",
        "conversation:joined",
        "reaction:updated",
    ]
    assert {"s1", "s2"} <= server.members(ROOM)


async def test_other_tenant_same_ids_touch_only_their_rooms(server: Any, h: Any) -> None:
    server.rooms["user:t2:u1"] = {"x1"}
    server.rooms["conv:t2:c1"] = {"x1"}
    await feed(
        server,
        h,
        h.event(1, tenant="t2", member_removed=ev.MemberRemoved(user_id="u1")),
        h.event(2, tenant="t2", conversation_deleted=ev.ConversationDeleted()),
    )
    # Tenant t1's user u1 and conversation c1 are untouched.
    assert server.members(ROOM) == {"s1", "s2", "s3"}
    assert {r for _, _, r in server.emits} == {"conv:t2:c1", "user:t2:u1"}
    assert server.closed == ["conv:t2:c1"]


async def test_unknown_payload_is_dropped(server: Any, h: Any) -> None:
    await feed(server, h, h.event(1))
    assert server.emits == []


async def test_presence_still_fans_out(server: Any, h: Any) -> None:
    event = pev.PresenceEvent(
        tenant_id="t1", presence=ppb.UserPresence(user_id="u1", status=ppb.PRESENCE_STATUS_ONLINE)
    )
    rec = dataclasses.replace(
        h.record(h.event(1)), topic=PRESENCE_EVENTS_TOPIC, value=event.SerializeToString()
    )
    asked: list[tuple[str, str]] = []

    async def conversations_of(tenant: str, user: str) -> list[str]:
        asked.append((tenant, user))
        return ["c1", "c2"]

    fanout = Fanout(server, h.opener(), conversations_of, FakeClock())
    await fanout.handle(rec)
    await fanout.handle(rec)
    # Staff see the roster, the user sees themselves, members see it through
    # the conversations they share; the lookup is cached.
    [(data, rooms), _] = server.emitted("presence:updated")
    assert rooms == ["staff:t1", "user:t1:u1", "conv:t1:c1", "conv:t1:c2"]
    assert data["status"] == "online"
    assert asked == [("t1", "u1")]
