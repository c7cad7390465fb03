"""The delivery contract across gateway pods: exactly once, in order, resumable.

Two gateways on one fleet of their own. Clients are ``ResumingClient``s, which apply
only the next seq, drop repeats, fill holes with ``sync`` and reconnect round-robin;
the assertions are on what each one applied.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pymongo
import pytest
import pytest_asyncio
from confab_devfleet import Fleet

from .conftest import TENANT_A, Api, Socket, running_fleet
from .resume import ResumingClient, SteadySender

LOOP = "module"
pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope=LOOP)]


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def fleet2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with running_fleet(tmp_path_factory.mktemp("delivery"), gateways=2) as fleet:
        yield fleet


@pytest_asyncio.fixture(loop_scope=LOOP)
async def apis(fleet2: Fleet) -> AsyncIterator[Callable[..., Api]]:
    made: list[Api] = []

    def make(user: str, gateway: int = 0) -> Api:
        api = Api(fleet2.gateway_url(gateway), fleet2.token(TENANT_A, user))
        made.append(api)
        return api

    yield make
    for api in made:
        await api.close()


@pytest_asyncio.fixture(loop_scope=LOOP)
async def clients(fleet2: Fleet) -> AsyncIterator[Callable[..., Any]]:
    made: list[ResumingClient] = []

    async def make(
        user: str, conversations: list[str], gateway: int = 0, **kwargs: Any
    ) -> ResumingClient:
        client = ResumingClient(
            user,
            [fleet2.gateway_url(i) for i in range(len(fleet2.gateways))],
            fleet2.token(TENANT_A, user),
            conversations=conversations,
            start_index=gateway,
            **kwargs,
        )
        made.append(client)
        await client.start()
        return client

    yield make
    for client in made:
        await client.close()


def assert_exactly(client: ResumingClient, conv: str, acked_ids: list[str]) -> None:
    """The client applied exactly the acked messages, seq 1..N, in order."""
    assert client.seqs(conv) == list(range(1, len(acked_ids) + 1)), client.describe()
    assert [m["id"] for m in client.messages(conv)] == acked_ids
    assert client.order_violations == [], client.order_violations
    assert client.same_link_duplicates == 0
    assert client.errors == []


async def history(api: Api, conv: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        resp = await api.client.get(
            f"/conversations/{conv}/messages", params={"after_seq": after, "limit": 100}
        )
        assert resp.status_code == 200, resp.text
        page = resp.json()
        out.extend(page["messages"])
        if not page["has_more"]:
            return out
        after = page["messages"][-1]["seq"]


async def event_log(api: Api, conv: str, after: int = 0) -> dict[str, Any]:
    events: list[dict[str, Any]] = []
    while True:
        resp = await api.client.get(
            f"/conversations/{conv}/events", params={"after_event_seq": after, "limit": 100}
        )
        assert resp.status_code == 200, resp.text
        page = resp.json()
        if page["resync_required"]:
            return {"events": events, "resync_required": True}
        events.extend(page["events"])
        if not page["has_more"] or not page["events"]:
            return {"events": events, "resync_required": False}
        after = page["events"][-1]["event_seq"]


async def test_clients_on_different_gateways_talk_to_each_other(
    fleet2: Fleet, apis, clients
) -> None:
    alice, bob = uid("alice"), uid("bob")
    conv = (await apis(alice).create("group", [bob]))["id"]
    a = await clients(alice, [conv], gateway=0)
    b = await clients(bob, [conv], gateway=1)
    assert (a.url, b.url) == (fleet2.gateway_url(0), fleet2.gateway_url(1))

    first = await a.call(
        "message:send", {"conversation_id": conv, "text": "from gw0", "client_msg_id": uid("c")}
    )
    assert first["ok"], first
    await b.wait_applied(conv, 1, timeout=10)
    second = await b.call(
        "message:send", {"conversation_id": conv, "text": "from gw1", "client_msg_id": uid("c")}
    )
    assert second["ok"], second
    await a.wait_applied(conv, 2, timeout=10)
    await b.wait_applied(conv, 2, timeout=10)

    ids = [first["message"]["id"], second["message"]["id"]]
    for client in (a, b):
        assert_exactly(client, conv, ids)
        # Carried live across pods, not repaired by a sync.
        assert [x.source for x in client.applied[conv]] == ["live", "live"]
        assert client.raw_duplicates == 0 and client.live_gaps == 0
    assert [m["text"] for m in b.messages(conv)] == ["from gw0", "from gw1"]


async def test_retried_send_never_duplicates_over_rest_and_socket(
    fleet2: Fleet, apis, clients
) -> None:
    alice, bob = uid("alice"), uid("bob")
    rest0, rest1 = apis(alice, 0), apis(alice, 1)
    conv = (await rest0.create("group", [bob]))["id"]
    watcher = await clients(bob, [conv], gateway=1)

    # REST: the same client_msg_id five times, racing through both gateways, then once more.
    cmid = uid("rest")
    racing = await asyncio.gather(
        *((rest0 if i % 2 else rest1).send(conv, "rest, retried", cmid) for i in range(5))
    )
    late = await rest1.send(conv, "rest, retried", cmid)
    answers = [*racing, late]
    assert sorted(r.status_code for r in answers) == [200, 200, 200, 200, 200, 201]
    assert {r.json()["message"]["id"] for r in answers} == {answers[0].json()["message"]["id"]}
    assert {r.json()["message"]["seq"] for r in answers} == {1}
    rest_id = answers[0].json()["message"]["id"]

    # Socket: the same client_msg_id from two sockets of the sender on both gateways.
    s0, s1 = Socket(), Socket()
    await s0.connect(fleet2.gateway_url(0), fleet2.token(TENANT_A, alice))
    await s1.connect(fleet2.gateway_url(1), fleet2.token(TENANT_A, alice))
    try:
        body = {"conversation_id": conv, "text": "socket, retried", "client_msg_id": uid("sock")}
        acks = await asyncio.gather(*(s.call("message:send", body) for s in (s0, s1, s0, s1)))
        again = await s0.call("message:send", body)
    finally:
        await s0.close()
        await s1.close()
    acks.append(again)
    assert all(a["ok"] for a in acks), acks
    assert sorted(a["created"] for a in acks) == [False, False, False, False, True]
    assert {a["message"]["seq"] for a in acks} == {2}
    socket_id = acks[0]["message"]["id"]

    marker = await rest0.send(conv, "marker", uid("m"))
    assert marker.status_code == 201
    ids = [rest_id, socket_id, marker.json()["message"]["id"]]
    await watcher.wait_applied(conv, 3, timeout=10)
    assert_exactly(watcher, conv, ids)
    # The pods emitted each message once: nothing even reached the client twice.
    assert watcher.raw_duplicates == 0
    assert [m["id"] for m in await history(rest0, conv)] == ids


async def test_polling_client_sends_receives_and_resumes(fleet2: Fleet, apis, clients) -> None:
    alice, bob = uid("alice"), uid("bob")
    api = apis(alice, 1)
    conv = (await api.create("group", [bob]))["id"]
    poller = await clients(bob, [conv], gateway=1, transports=["polling"])
    talker = await clients(alice, [conv], gateway=0)
    assert poller._sio is not None and poller._sio.transport() == "polling"

    sent = await poller.call(
        "message:send", {"conversation_id": conv, "text": "by polling", "client_msg_id": uid("c")}
    )
    assert sent["ok"], sent
    await talker.wait_applied(conv, 1, timeout=10)
    reply = await talker.call(
        "message:send", {"conversation_id": conv, "text": "by websocket", "client_msg_id": uid("c")}
    )
    await poller.wait_applied(conv, 2, timeout=10)
    ids = [sent["message"]["id"], reply["message"]["id"]]

    await poller.pause()
    for i in range(5):
        resp = await api.send(conv, f"while away {i}", uid("m"))
        assert resp.status_code == 201
        ids.append(resp.json()["message"]["id"])
    await talker.wait_applied(conv, 7, timeout=10)
    await poller.resume()
    assert poller.url == fleet2.gateway_url(0)  # round-robin: the other gateway
    assert poller.reconnects == 1
    await poller.wait_applied(conv, 7, timeout=10)
    assert [x.source for x in poller.applied[conv][2:]] == ["sync"] * 5

    after = await api.send(conv, "live again", uid("m"))
    ids.append(after.json()["message"]["id"])
    await poller.wait_applied(conv, 8, timeout=10)
    assert poller.applied[conv][-1].source == "live"
    assert_exactly(poller, conv, ids)
    assert_exactly(talker, conv, ids)


async def test_gateway_killed_mid_stream_loses_and_repeats_nothing(
    fleet2: Fleet, apis, clients
) -> None:
    sender_user = uid("sender")
    users = [uid("r0ws"), uid("r0poll"), uid("r1ws")]
    api = apis(sender_user, 1)
    conv = (await api.create("group", users))["id"]
    on_gw0 = [
        await clients(users[0], [conv], gateway=0),
        await clients(users[1], [conv], gateway=0, transports=["polling"]),
    ]
    on_gw1 = [await clients(users[2], [conv], gateway=1)]

    total = 200
    sender = SteadySender(
        "stream",
        [fleet2.gateway_url(1)],
        fleet2.token(TENANT_A, sender_user),
        conv,
        count=total,
        rate=40,
    )
    streaming = asyncio.create_task(sender.run())
    deadline = time.monotonic() + 30
    while len(sender.acks) < 60:
        assert not streaming.done(), sender.errors
        assert time.monotonic() < deadline, "the stream did not start"
        await asyncio.sleep(0.02)
    killed_at = len(sender.acks)
    await asyncio.to_thread(fleet2.gateways[0].kill)
    try:
        acks = await asyncio.wait_for(streaming, timeout=60)
        assert sender.errors == []
        assert [a.seq for a in acks] == list(range(1, total + 1))
        ids = [a.message_id for a in acks]
        for client in [*on_gw0, *on_gw1]:
            await client.wait_applied(conv, total, timeout=30)
            assert_exactly(client, conv, ids)
        for client in on_gw0:
            assert client.reconnects >= 1
            assert client.url == fleet2.gateway_url(1)
        # The gw1 client never lost its link; its stream was live throughout.
        assert on_gw1[0].reconnects == 0
        assert {x.source for x in on_gw1[0].applied[conv]} == {"live"}
        assert 0 < killed_at < total
    finally:
        await asyncio.to_thread(fleet2.gateways[0].start, 120)
    # gw0 is back for the tests after this one.
    back = await clients(users[0], [conv], gateway=0)
    await back.wait_applied(conv, total, timeout=10)
    assert back.url == fleet2.gateway_url(0)


async def test_resume_replays_edits_deletes_reactions_and_read_markers(
    fleet2: Fleet, apis, clients
) -> None:
    alice, bob, carol = uid("alice"), uid("bob"), uid("carol")
    a, b = apis(alice, 0), apis(bob, 1)
    conv = (await a.create("group", [bob, carol], "events"))["id"]
    carol_client = await clients(carol, [conv], gateway=0, mode="events")
    msgs = []
    for i in range(3):
        resp = await a.send(conv, f"message {i}", uid("m"))
        assert resp.status_code == 201
        msgs.append(resp.json()["message"])
    before = await event_log(a, conv)
    await carol_client.wait_applied(conv, len(before["events"]), timeout=10)
    seen = carol_client.last[conv]
    assert seen == before["events"][-1]["event_seq"]

    await carol_client.pause()
    bob_socket = Socket()
    await bob_socket.connect(fleet2.gateway_url(1), fleet2.token(TENANT_A, bob))
    try:
        resp = await a.client.patch(
            f"/conversations/{conv}/messages/{msgs[0]['id']}", json={"text": "edited"}
        )
        assert resp.status_code == 200, resp.text
        resp = await a.client.delete(f"/conversations/{conv}/messages/{msgs[1]['id']}")
        assert resp.status_code == 200, resp.text
        ack = await bob_socket.call(
            "reaction:toggle", {"conversation_id": conv, "message_id": msgs[2]["id"], "emoji": "👍"}
        )
        assert ack["ok"], ack
        resp = await b.client.post(f"/conversations/{conv}/read", json={"seq": 3})
        assert resp.status_code == 200, resp.text
        resp = await a.client.patch(f"/conversations/{conv}", json={"topic": "resuming"})
        assert resp.status_code == 200, resp.text
        resp = await a.send(conv, "while carol was away", uid("m"))
        assert resp.status_code == 201
    finally:
        await bob_socket.close()

    missed = await event_log(a, conv, after=seen)
    assert [e["event"] for e in missed["events"]] == [
        "message:updated",
        "message:deleted",
        "reaction:updated",
        "receipt:updated",
        "conversation:updated",
        "message:new",
    ]
    await carol_client.resume()
    assert carol_client.url == fleet2.gateway_url(1)
    applied = carol_client.applied[conv]
    replayed = applied[len(before["events"]) :]
    assert [(x.event, x.seq, x.data) for x in replayed] == [
        (e["event"], e["event_seq"], e["data"]) for e in missed["events"]
    ]
    assert {x.source for x in replayed} == {"sync"}
    assert replayed[0].seq == seen + 1

    # Live again, on the other pod: the next events follow with no hole and no repeat.
    live = await a.send(conv, "live after resume", uid("m"))
    resp = await a.client.patch(
        f"/conversations/{conv}/messages/{live.json()['message']['id']}", json={"text": "fixed"}
    )
    assert resp.status_code == 200
    full = await event_log(a, conv)
    await carol_client.wait_applied(conv, len(full["events"]), timeout=10)
    assert [x.source for x in carol_client.applied[conv][-2:]] == ["live", "live"]
    assert carol_client.seqs(conv) == list(range(1, len(full["events"]) + 1))
    # Same events in the same order; but the log shows each message as it is now (no
    # old words after an edit or a delete), where the live stream showed it as it was.
    applied_all = carol_client.applied[conv]
    assert [x.event for x in applied_all] == [e["event"] for e in full["events"]]
    now_text = {msgs[0]["id"]: "edited", live.json()["message"]["id"]: "fixed"}
    for x, e in zip(applied_all, full["events"], strict=True):
        message_id = e["data"].get("id") if e["event"].startswith("message:") else None
        if message_id == msgs[1]["id"]:
            assert e["data"]["deleted"] and "message 1" not in str(e["data"])
        elif message_id in now_text:
            assert e["data"]["text"] == now_text[message_id], e
        else:
            assert x.data == e["data"]
    # A live copy may trail the replay (the room is joined before the replay is read):
    # the client drops it. Only a replayed item may come again, never a live one.
    sources = carol_client.sources(conv)
    assert all(sources[seq] == "sync" for _, seq, _, _ in carol_client.dropped), (
        carol_client.dropped
    )
    assert carol_client.order_violations == []
    assert carol_client.errors == []


async def test_client_too_far_behind_is_told_to_resync(fleet2: Fleet, apis, clients) -> None:
    alice, bob = uid("alice"), uid("bob")
    a = apis(alice, 0)
    conv = (await a.create("group", [bob]))["id"]
    follower = await clients(bob, [conv], gateway=0, mode="events")
    for i in range(5):
        assert (await a.send(conv, f"m{i}", uid("m"))).status_code == 201
    log = (await event_log(a, conv))["events"]
    await follower.wait_applied(conv, len(log), timeout=10)
    await follower.pause()
    for i in range(2):
        assert (await a.send(conv, f"later {i}", uid("m"))).status_code == 201
    log = (await event_log(a, conv))["events"]
    last_event_seq = log[-1]["event_seq"]
    behind = follower.last[conv]
    assert behind == last_event_seq - 2

    # Retention: the oldest events are gone from the log (as the TTL index would do).
    k = 3
    with pymongo.MongoClient(fleet2.mongo.url, serverSelectionTimeoutMS=5000) as mongo:
        outbox = mongo["confab_conversation"]["outbox"]
        deleted = await asyncio.to_thread(
            outbox.delete_many, {"conversation_id": conv, "event_seq": {"$lte": k}}
        )
    assert deleted.deleted_count == k

    sock = Socket()
    await sock.connect(fleet2.gateway_url(1), fleet2.token(TENANT_A, bob))
    try:
        for older in (0, 1, k - 1):
            ack = await sock.call("sync", {"conversations": {conv: older}, "mode": "events"})
            assert ack["ok"], ack
            assert ack["resync_required"] == {conv: True}, (older, ack)
            assert ack["events"] == {conv: []}  # nothing partial, so nothing silently skipped
            assert ack["has_more"] == {conv: False}
        ack = await sock.call("sync", {"conversations": {conv: k}, "mode": "events"})
        assert ack["resync_required"] == {conv: False}
        assert [e["event_seq"] for e in ack["events"][conv]] == list(
            range(k + 1, last_event_seq + 1)
        )
        assert ack["events"][conv] == [e for e in log if e["event_seq"] > k]
        # The messages themselves are kept: a reload gets them all.
        ack = await sock.call("sync", {"conversations": {conv: 0}})
        assert [m["seq"] for m in ack["messages"][conv]] == list(range(1, 8))
    finally:
        await sock.close()
    assert (await event_log(a, conv, after=1))["resync_required"] is True

    # A client still inside the kept window resumes normally...
    await follower.resume()
    assert follower.seqs(conv) == list(range(1, last_event_seq + 1))
    assert follower.resync_required == {}
    # ...and one from before it is told to reload instead of applying past the hole.
    late = await clients(bob, [conv], gateway=1, mode="events")
    assert late.resync_required == {conv: True}
    assert late.applied[conv] == []
    assert late.errors == []
