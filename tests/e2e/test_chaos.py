"""Chaos: a steady stream of messages while gateways, Kafka and MongoDB fail in turn.

Three senders post to their own conversation at a fixed rate over REST, each message
with its own client_msg_id and retried with it until acknowledged. Five resuming
clients (four over WebSocket, one over long-polling, spread over both gateways) follow
all three conversations. During the stream: a gateway is killed and started again,
the Kafka broker is stopped and started, the MongoDB server is killed and started, and
the other gateway is killed and started. Afterwards every client must hold exactly the
acknowledged messages of every conversation, seq 1..N, once each, in order, and the
stored history must be exactly the acknowledged client_msg_ids, once each.

The numbers are printed and written as JSON under pytest's tmp dir.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from confab_devfleet import Fleet

from .conftest import TENANT_A, Api, running_fleet
from .resume import ResumingClient, SteadySender

LOOP = "module"
pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope=LOOP)]

RATE = 20.0  # messages per second, all senders together
STREAM_SECONDS = 40.0
SENDERS = 3
# (transport, first gateway) of each receiving client
RECEIVERS = [
    ("websocket", 0),
    ("websocket", 1),
    ("websocket", 0),
    ("websocket", 1),
    ("polling", 0),
]
DRAIN_SECONDS = 120.0


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def chaos_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with running_fleet(tmp_path_factory.mktemp("chaos"), gateways=2) as fleet:
        yield fleet


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


class Chaos:
    """Runs the faults in turn, each at a fixed offset into the stream, and logs them."""

    def __init__(self, fleet: Fleet, clients: list[ResumingClient], t0: float) -> None:
        self.fleet = fleet
        self.clients = clients
        self.t0 = t0
        self.log: list[dict[str, Any]] = []

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 2)

    async def at(self, offset: float) -> None:
        delay = self.t0 + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # the schedule's pacing, not a wait for a condition

    async def fault(
        self,
        name: str,
        down: Callable[[], None],
        up: Callable[[], None],
        while_down: Callable[[], Awaitable[None]],
    ) -> None:
        entry: dict[str, Any] = {"fault": name, "at_s": self.now()}
        await asyncio.to_thread(down)
        entry["down_at_s"] = self.now()
        await while_down()
        entry["restart_at_s"] = self.now()
        await asyncio.to_thread(up)
        entry["back_at_s"] = self.now()
        self.log.append(entry)

    async def hold(self, seconds: float) -> None:
        await asyncio.sleep(seconds)  # how long the outage lasts: part of the fault

    async def moved_off(self, url: str) -> None:
        """Waits until no client is on ``url`` and all are connected elsewhere."""
        deadline = time.monotonic() + 60
        while any(c.url == url or not c.connected or c.busy for c in self.clients):
            assert time.monotonic() < deadline, [c.describe() for c in self.clients]
            await asyncio.sleep(0.05)

    async def run(self) -> None:
        gw0, gw1 = self.fleet.gateways
        kafka, mongo = self.fleet.kafka, self.fleet.mongo
        await self.at(4)
        await self.fault(
            "kill gateway-0", gw0.kill, lambda: gw0.start(120), lambda: self.moved_off(gw0.url)
        )
        await self.at(12)
        await self.fault("stop kafka", kafka.stop, lambda: kafka.start(120), lambda: self.hold(3))
        # Longer than the gateway's RPC deadline (10 s), so sends fail with a 5xx and the
        # senders retry them, some of which were stored just before the kill.
        await self.at(24)
        await self.fault(
            "kill mongodb", mongo.kill, lambda: mongo.start(120), lambda: self.hold(12)
        )
        await self.at(38)
        await self.fault(
            "kill gateway-1", gw1.kill, lambda: gw1.start(120), lambda: self.moved_off(gw1.url)
        )


async def test_nothing_lost_duplicated_or_reordered_through_chaos(
    chaos_fleet: Fleet, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = chaos_fleet
    urls = [gw.url for gw in fleet.gateways]
    senders = [uid(f"sender{i}") for i in range(SENDERS)]
    receivers = [uid(f"recv{i}") for i in range(len(RECEIVERS))]
    reader = Api(urls[0], fleet.token(TENANT_A, receivers[0]))  # a member of every stream
    convs = []
    for s in senders:
        api = Api(urls[0], fleet.token(TENANT_A, s))
        convs.append((await api.create("group", receivers, f"stream of {s}"))["id"])
        await api.close()

    clients = [
        ResumingClient(
            f"{user}-{transport}",
            urls,
            fleet.token(TENANT_A, user),
            conversations=convs,
            transports=[transport],
            start_index=gateway,
            reconnect_deadline=120,
        )
        for user, (transport, gateway) in zip(receivers, RECEIVERS, strict=True)
    ]
    per_sender = int(RATE / SENDERS * STREAM_SECONDS)
    streams = [
        SteadySender(
            f"s{i}-{uuid.uuid4().hex[:6]}",
            urls[i % 2 :] + urls[: i % 2],  # spread over both gateways
            fleet.token(TENANT_A, user),
            conv,
            count=per_sender,
            rate=RATE / SENDERS,
            deadline=120,
        )
        for i, (user, conv) in enumerate(zip(senders, convs, strict=True))
    ]
    summary: dict[str, Any] = {}
    try:
        for c in clients:
            await c.start()
        t0 = time.monotonic()
        chaos = Chaos(fleet, clients, t0)
        sending = [asyncio.create_task(s.run()) for s in streams]
        faults = asyncio.create_task(chaos.run())
        await asyncio.wait_for(asyncio.gather(*sending, faults), timeout=300)
        stream_seconds = time.monotonic() - t0

        # Drain: every client gets every acknowledged message, or the deadline says no.
        drain_start = time.monotonic()
        wanted = {s.conversation_id: len(s.acks) for s in streams}
        drained = True
        try:
            for c in clients:
                for conv, n in wanted.items():
                    left = max(1.0, DRAIN_SECONDS - (time.monotonic() - drain_start))
                    await c.wait_applied(conv, n, timeout=left)
        except AssertionError as exc:
            drained = False
            summary["drain_error"] = str(exc)
        drain_seconds = time.monotonic() - drain_start

        stored = {conv: await history(reader, conv) for conv in convs}
        lost = 0
        applied_duplicates = 0
        order_violations = 0
        for c in clients:
            for s in streams:
                acked_ids = [a.message_id for a in s.acks]
                got = [m["id"] for m in c.messages(s.conversation_id)]
                lost += len(set(acked_ids) - set(got))
                applied_duplicates += len(got) - len(set(got))
                order_violations += len(c.order_violations)
                seqs = c.seqs(s.conversation_id)
                order_violations += sum(1 for a, b in itertools.pairwise(seqs) if b != a + 1)
        summary.update(
            {
                "messages_acked": sum(len(s.acks) for s in streams),
                "messages_planned": per_sender * SENDERS,
                "rate_per_s": RATE,
                "stream_seconds": round(stream_seconds, 1),
                "drain_seconds": round(drain_seconds, 1),
                "drained": drained,
                "faults": chaos.log,
                "kills": len(chaos.log),
                "clients": len(clients),
                "conversations": len(convs),
                "reconnects": sum(c.reconnects for c in clients),
                "lost": lost,
                "applied_duplicates": applied_duplicates,
                "order_violations": order_violations,
                "raw_duplicates_dropped": sum(c.raw_duplicates for c in clients),
                "replay_overlap_dropped": sum(c.replay_overlap for c in clients),
                "live_gaps_filled_by_sync": sum(c.live_gaps for c in clients),
                "same_link_duplicates": sum(c.same_link_duplicates for c in clients),
                "max_delivery_delay_s": round(max(c.max_delay for c in clients), 2),
                "send_attempts": sum(s.attempts for s in streams),
                "send_retries": sum(s.retries for s in streams),
                "retry_reasons": dict(sum((Counter(s.retry_reasons) for s in streams), Counter())),
                "retries_answered_created_false": sum(
                    1 for s in streams for a in s.acks if not a.created
                ),
                "stored_messages": sum(len(v) for v in stored.values()),
                "per_client": [c.stats() for c in clients],
                # When and where the dropped repeats came: (client, gateway, second, count).
                "raw_duplicates_by_second": sorted(
                    Counter(
                        (c.name, url, int(at - t0)) for c in clients for _, _, url, at in c.dropped
                    ).items()
                ),
            }
        )
    finally:
        path = tmp_path_factory.mktemp("chaos-summary") / "chaos-summary.json"
        path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
        line = (
            f"chaos: {summary.get('messages_acked')} messages acked, "
            f"{summary.get('kills')} faults, {summary.get('clients')} clients, "
            f"{summary.get('reconnects')} reconnects, lost {summary.get('lost')}, "
            f"applied duplicates {summary.get('applied_duplicates')}, "
            f"order violations {summary.get('order_violations')}, "
            f"raw duplicates dropped {summary.get('raw_duplicates_dropped')} "
            f"(+{summary.get('replay_overlap_dropped')} replay overlap), "
            f"live gaps filled {summary.get('live_gaps_filled_by_sync')}, "
            f"send retries {summary.get('send_retries')}, "
            f"max delivery delay {summary.get('max_delivery_delay_s')}s, "
            f"drain {summary.get('drain_seconds')}s; summary: {path}"
        )
        with capsys.disabled():
            print(f"\n{line}")
        for c in clients:
            await c.close()
        await reader.close()

    # The senders: every message acknowledged once, seqs gapless in send order.
    for s in streams:
        assert s.errors == [], s.errors
        assert len(s.acks) == per_sender
        assert [a.seq for a in s.acks] == list(range(1, per_sender + 1)), s.name
        assert len({a.message_id for a in s.acks}) == per_sender
    assert summary["drained"], summary.get("drain_error")
    # Every client: exactly the acknowledged messages of every conversation, in order.
    for c in clients:
        assert c.errors == [], (c.name, c.errors)
        assert c.order_violations == [], (c.name, c.order_violations)
        assert c.same_link_duplicates == 0, c.name
        for s in streams:
            conv = s.conversation_id
            assert c.seqs(conv) == list(range(1, per_sender + 1)), (c.name, c.describe())
            assert [m["id"] for m in c.messages(conv)] == [a.message_id for a in s.acks]
            assert [m["client_msg_id"] for m in c.messages(conv)] == [
                a.client_msg_id for a in s.acks
            ]
    # Storage: exactly the acknowledged client_msg_ids, once each, seq 1..N.
    for s in streams:
        kept = stored[s.conversation_id]
        assert [m["seq"] for m in kept] == list(range(1, per_sender + 1))
        assert [m["client_msg_id"] for m in kept] == [a.client_msg_id for a in s.acks]
        assert max(Counter(m["client_msg_id"] for m in kept).values()) == 1
    assert summary["lost"] == 0 and summary["applied_duplicates"] == 0
    assert summary["order_violations"] == 0
