"""The scenarios: each a coroutine with parameters, returning a flat dict of numbers.

Open loop: the send schedule is fixed before the run (message i at t0 + i / rate), and
every latency is measured from that *intended* time, so a server (or a load generator)
that falls behind shows up as latency instead of quietly slowing the schedule down.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .client import RawSocket, SourcePool
from .pyspy import PySpy
from .stats import (
    Deliveries,
    ProcessMeter,
    bucket_quantiles,
    buckets,
    new_histogram,
    record_seconds,
    rss_bytes,
    summarize,
)
from .targets import BENCH_TENANT, ConfabTarget, Target

Result = dict[str, Any]

# Set by `bench.run --py-spy DIR`: scenarios sample the Python processes while they send.
PROFILE_DIR: Path | None = None


@dataclass
class Client:
    receiver: int
    user: str
    rooms: list[str]
    sock: RawSocket


@dataclass
class Crowd:
    """Sockets of one scenario, spread over source addresses and the target's gateways."""

    target: Target
    rec: Deliveries
    pool: SourcePool
    clients: list[Client] = field(default_factory=list)
    refused: int = 0

    def _handler(self, receiver: int) -> Any:
        loop = asyncio.get_running_loop()
        rec = self.rec

        def on_event(event: str, data: Any) -> None:
            if event == "message:new" and isinstance(data, dict):
                rec.on_message(receiver, data, loop.time())

        return on_event

    async def connect(
        self, members: list[tuple[str, list[str]]], concurrency: int = 64
    ) -> list[Client]:
        gate = asyncio.Semaphore(concurrency)
        urls = self.target.urls()
        start = len(self.clients)
        new: list[Client | None] = [None] * len(members)

        async def one(i: int, user: str, rooms: list[str]) -> None:
            receiver = start + i
            sock = RawSocket(self.pool.session(), urls[i % len(urls)], self._handler(receiver))
            async with gate:
                for attempt in range(3):
                    try:
                        await sock.connect(self.target.auth(user, rooms))
                        break
                    except Exception:
                        if attempt == 2:
                            self.refused += 1
                            return
                        await asyncio.sleep(0.5)
            new[i] = Client(receiver, user, rooms, sock)

        await asyncio.gather(*(one(i, u, r) for i, (u, r) in enumerate(members)))
        made = [c for c in new if c is not None]
        self.clients.extend(made)
        return made

    def listeners(self, users: set[str] | None = None) -> dict[str, list[int]]:
        """Room -> receivers; ``users`` limits it to those (the ones connected at start)."""
        out: dict[str, list[int]] = {}
        for c in self.clients:
            if users is not None and c.user not in users:
                continue
            for room in c.rooms:
                out.setdefault(room, []).append(c.receiver)
        return out

    async def close(self) -> None:
        await asyncio.gather(*(c.sock.close() for c in self.clients), return_exceptions=True)
        self.clients.clear()


@dataclass
class Sends:
    scheduled: int = 0
    acked: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    lag_max_s: float = 0.0
    ack_latency: Any = field(default_factory=new_histogram)


async def open_loop(
    target: Target,
    rec: Deliveries,
    senders: list[tuple[Client, str]],
    rate: float,
    duration: float,
    run_id: str,
) -> Sends:
    """Sends ``rate * duration`` messages on a fixed schedule, round robin over senders."""
    loop = asyncio.get_running_loop()
    out = Sends()
    total = int(rate * duration)
    t0 = loop.time() + 0.2

    def on_ack(conv: str, cmid: str, value: Any) -> None:
        intended = rec.intended.get(cmid, t0)
        record_seconds(out.ack_latency, loop.time() - intended)
        if isinstance(value, dict) and value.get("ok"):
            out.acked += 1
            rec.acked[conv].add(int(value["message"]["seq"]))
        else:
            code = "no_ack"
            if isinstance(value, dict):
                code = str((value.get("error") or {}).get("code", "not_ok"))
            out.errors[code] = out.errors.get(code, 0) + 1

    for i in range(total):
        intended = t0 + i / rate
        delay = intended - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            out.lag_max_s = max(out.lag_max_s, -delay)
        client, conv = senders[i % len(senders)]
        cmid = f"{run_id}-{i}"
        rec.intended[cmid] = intended
        payload = target.send_payload(conv, cmid, f"bench {i}")
        out.scheduled += 1
        if not client.sock.connected:
            out.errors["sender_disconnected"] = out.errors.get("sender_disconnected", 0) + 1
            continue
        try:
            await client.sock.send_with_callback(
                target.send_event,
                payload,
                functools.partial(on_ack, conv, cmid),
            )
        except Exception:
            out.errors["send_failed"] = out.errors.get("send_failed", 0) + 1
    return out


async def all_acked(sends: Sends, limit: float = 15) -> None:
    """Waits for every scheduled send's ack (or error), at most ``limit`` seconds."""
    for _ in range(int(limit / 0.05)):
        if sends.acked + sum(sends.errors.values()) >= sends.scheduled:
            return
        await asyncio.sleep(0.05)


async def drain(rec: Deliveries, expected: int, quiet: float = 10, limit: float = 30) -> None:
    """Waits until every expected delivery came, or nothing new came for ``quiet``
    seconds after something did (a backlog still in the outbox or Kafka gets ``limit``)."""
    deadline = time.monotonic() + limit
    last, still = rec.count, time.monotonic()
    while time.monotonic() < deadline and rec.count < expected:
        await asyncio.sleep(0.1)
        if rec.count != last:
            last, still = rec.count, time.monotonic()
        elif rec.count > 0 and time.monotonic() - still > quiet:
            break


async def settle(
    target: Target, idle_cores: float = 0.15, window: float = 1.0, limit: float = 90
) -> tuple[float, float]:
    """Waits until the fan-out processes are near idle (presence storms and joins done),
    so the clock starts on a quiet server; returns (seconds waited, their CPU-seconds)."""
    meter = ProcessMeter(target.server_pids(), include_self=False)
    meter.start()
    started = time.perf_counter()
    await asyncio.sleep(1.0)
    zero_lag = 0
    while time.perf_counter() - started < limit:
        probe = ProcessMeter(target.server_pids(), include_self=False)
        probe.start()
        await asyncio.sleep(window)
        probe.stop()
        lag = await consumer_lag(target)
        zero_lag = zero_lag + 1 if not lag else 0
        if sum(probe.cpu.values()) / probe.wall < idle_cores and zero_lag >= 3:
            break
    meter.stop()
    return time.perf_counter() - started, sum(meter.cpu.values())


async def consumer_lag(target: Target) -> float:
    """The gateways' Kafka consumer lag, from their /metrics (0 for other targets).

    A gateway handles its records one at a time, so a burst of presence events (every
    connect and disconnect) delays the messages behind it; CPU alone does not show
    it, because the gateway waits on an RPC per presence event.
    """
    if not isinstance(target, ConfabTarget):
        return 0.0
    total = 0.0
    async with httpx.AsyncClient(timeout=5) as http:
        for url in target.urls():
            try:
                text = (await http.get(f"{url}/metrics")).text
            except httpx.HTTPError:
                return float("inf")
            for line in text.splitlines():
                if line.startswith("confab_kafka_consumer_lag{"):
                    total += float(line.rsplit(" ", 1)[1])
    return total


# Where the time goes inside Confab, from its own histograms: (result key, process
# name prefix, metric, label filter).
STAGES = (
    ("stage_send_rpc", "conversation", "confab_grpc_server_handling_seconds", "SendMessage"),
    ("stage_store_to_emit", "gateway", "confab_gateway_send_to_emit_seconds", ""),
)


async def scrape_stages(target: Target) -> dict[str, dict[float, float]]:
    if not isinstance(target, ConfabTarget):
        return {}
    out: dict[str, dict[float, float]] = {}
    async with httpx.AsyncClient(timeout=5) as http:
        for key, prefix, metric, match in STAGES:
            total: dict[float, float] = {}
            for name, url in target.metrics_urls().items():
                if not name.startswith(prefix):
                    continue
                with contextlib.suppress(httpx.HTTPError):
                    for le, n in buckets((await http.get(url)).text, metric, match).items():
                        total[le] = total.get(le, 0.0) + n
            out[key] = total
    return out


def stage_deltas(
    before: dict[str, dict[float, float]], after: dict[str, dict[float, float]]
) -> Result:
    return {k: bucket_quantiles(before.get(k, {}), v) for k, v in after.items()}


async def canary(
    target: Target, rec: Deliveries, crowd: Crowd, sender: tuple[Client, str], limit: float = 90
) -> float:
    """One message through the whole pipeline before the clock starts: returns once
    every socket of its room has it, so a backlog (presence events queued ahead of
    messages in the gateway's consumer, say) is not charged to the scenario."""
    client, conv = sender
    started = time.perf_counter()
    ack = await client.sock.call(
        target.send_event,
        target.send_payload(conv, f"canary-{uuid.uuid4().hex[:8]}", "canary"),
        wait_s=limit,
    )
    if not (isinstance(ack, dict) and ack.get("ok")):
        raise RuntimeError(f"canary send failed: {ack!r}")
    seq = int(ack["message"]["seq"])
    listeners = crowd.listeners({c.user for c in crowd.clients if c.sock.connected}).get(conv, [])
    while time.perf_counter() - started < limit:
        if all(seq in rec.seen.get((r, conv), ()) for r in listeners):
            break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError(f"canary not delivered to every listener within {limit:.0f} s")
    rec.acked[conv].discard(seq)
    rec.count = 0
    rec.unknown = 0
    rec.first_at = rec.last_at = None
    return time.perf_counter() - started


def _users(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


async def traffic(
    target: Target,
    rooms: list[list[str]],
    rate: float,
    duration: float,
    label: str,
    *,
    kind: str = "group",
    senders_per_room: int | None = None,
    sources: int = 8,
    during: Any = None,
    join_after_connect: bool = False,
) -> Result:
    """Rooms of the given members; messages round robin over rooms and their senders.

    ``during``: an optional coroutine function called with the loop running, whose
    result dict is merged in (history pages while 1:1 messages flow).
    """
    rec = Deliveries()
    pool = SourcePool(sources)
    crowd = Crowd(target, rec, pool)
    try:
        late = join_after_connect and isinstance(target, ConfabTarget)
        t = time.perf_counter()
        if late:
            # Connect first, then create the rooms: the sockets join on `member:added`.
            # Connecting members of an existing room instead sets off presence:updated
            # to every co-member (N^2 emits), which is measured by `settle_s` otherwise.
            users = list(dict.fromkeys(u for members in rooms for u in members))
            clients = await crowd.connect([(u, []) for u in users])
            connect_s = time.perf_counter() - t
            convs = [await target.make_room(members, kind=kind) for members in rooms]
            of_user = {c.user: c for c in clients}
            for conv, members in zip(convs, rooms, strict=True):
                for u in members:
                    if u in of_user:
                        of_user[u].rooms.append(conv)
        else:
            convs = [await target.make_room(members, kind=kind) for members in rooms]
            by_user: dict[str, list[str]] = {}
            for conv, members in zip(convs, rooms, strict=True):
                for u in members:
                    by_user.setdefault(u, []).append(conv)
            t = time.perf_counter()
            clients = await crowd.connect(list(by_user.items()))
            connect_s = time.perf_counter() - t
            of_user = {c.user: c for c in clients}
        settle_s, settle_cpu = await settle(target)
        # Sockets that dropped while the rooms were made and joined (a gateway too busy to
        # answer Engine.IO pings closes them) are reported, and left out of the run.
        alive = {c.user for c in clients if c.sock.connected}
        dropped = len(clients) - len(alive)
        per_room: list[list[tuple[Client, str]]] = []
        for conv, members in zip(convs, rooms, strict=True):
            chosen = [u for u in members if u in alive][: senders_per_room or len(members)]
            per_room.append([(of_user[u], conv) for u in chosen])
        if not any(per_room):
            raise RuntimeError(f"no connected sender left ({dropped} sockets dropped)")
        # Interleave rooms so consecutive sends go to different rooms.
        senders = [
            s for round_ in itertools.zip_longest(*per_room) for s in round_ if s is not None
        ]
        canary_s = await canary(target, rec, crowd, senders[0])
        meter = ProcessMeter(target.all_pids())
        gw_names = list(target.server_pids())
        run_id = f"{label}-{uuid.uuid4().hex[:6]}"
        spy = PySpy(target.python_pids(), PROFILE_DIR, run_id) if PROFILE_DIR else None
        stages_before = await scrape_stages(target)
        meter.start()
        extra_task = asyncio.create_task(during()) if during else None
        with spy or contextlib.nullcontext():
            sends = await open_loop(target, rec, senders, rate, duration, run_id)
        # Acks may still be in flight: wait for them before counting the expected.
        await all_acked(sends)
        listeners = crowd.listeners(alive)
        expected = rec.expected(listeners)
        await drain(rec, expected)
        extra = await extra_task if extra_task else {}
        meter.stop()
        stages = stage_deltas(stages_before, await scrape_stages(target))
        gw_cpu = sum(meter.cpu.get(n, 0.0) for n in gw_names)
        all_cpu = sum(meter.cpu.values())
        span = duration
        if rec.first_at is not None and rec.last_at is not None:
            span = max(rec.last_at - rec.first_at, 1e-6)
        result: Result = {
            "target": target.name,
            "rooms": len(rooms),
            "room_size": len(rooms[0]) if rooms else 0,
            "sockets": len(clients),
            "connect_refused": crowd.refused,
            "dropped_before_start": dropped,
            "connect_s": round(connect_s, 2),
            "settle_s": round(settle_s, 1),
            "settle_gateway_cpu_s": round(settle_cpu, 2),
            "canary_s": round(canary_s, 2),
            "rate": rate,
            "duration_s": duration,
            "scheduled": sends.scheduled,
            "acked": sends.acked,
            "send_errors": dict(sends.errors),
            "scheduler_lag_max_ms": round(sends.lag_max_s * 1000, 1),
            "ack": summarize(sends.ack_latency),
            "deliveries": rec.count,
            "expected_deliveries": expected,
            "lost": rec.losses(listeners),
            "duplicates": rec.duplicates,
            "order_violations": rec.order_violations,
            "deliveries_per_s": round(rec.count / span, 1),
            "latency": summarize(rec.latency),
            "fanout_cpu_s": round(gw_cpu, 2),
            "deliveries_per_fanout_cpu_s": round(rec.count / gw_cpu, 1) if gw_cpu else None,
            "fleet_cpu_s": round(all_cpu, 2),
            "deliveries_per_fleet_cpu_s": round(rec.count / all_cpu, 1) if all_cpu else None,
            "cpu_s": {k: round(v, 2) for k, v in meter.cpu.items()},
            "rss_mib": {k: round(v, 1) for k, v in meter.rss_mib.items()},
            "loadgen_cpu_s": round(meter.loadgen_cpu, 2),
            "wall_s": round(meter.wall, 1),
            "load_avg_1m_after": round(os.getloadavg()[0], 2),
        }
        result.update(stages)
        result.update(extra)
        if spy:
            result["py_spy"] = spy.summaries()
        return result
    finally:
        await crowd.close()
        await pool.close()


# --- the scenarios ------------------------------------------------------------------


async def idle_connections(target: Target, n: int, sources: int = 8) -> Result:
    """(A) N idle sockets, each its own user: gateway RSS delta / N.

    More sockets than one process may hold (its open-files limit) are held by several
    worker processes instead (idle_workers.py), with the same keys in the result.
    """
    from .idle_workers import idle_connections_in_workers, per_process_limit

    if n > per_process_limit():
        users = _users(f"idle-{uuid.uuid4().hex[:4]}", n)
        return await idle_connections_in_workers(target, n, users, sources)
    rec = Deliveries()
    pool = SourcePool(sources)
    crowd = Crowd(target, rec, pool)
    procs = ProcessMeter(target.server_pids())
    try:
        await asyncio.sleep(1)
        before = sum(rss_bytes(p) for p in procs.procs.values())
        procs.start()
        t = time.perf_counter()
        users = _users(f"idle-{uuid.uuid4().hex[:4]}", n)
        clients = await crowd.connect([(u, []) for u in users], concurrency=128)
        connect_s = time.perf_counter() - t
        await asyncio.sleep(3)  # heartbeats and late allocations
        after = sum(rss_bytes(p) for p in procs.procs.values())
        procs.stop()
        alive = sum(1 for c in clients if c.sock.connected)
        return {
            "target": target.name,
            "connections": alive,
            "refused": crowd.refused,
            "connect_s": round(connect_s, 1),
            "connects_per_s": round(len(clients) / connect_s, 1) if connect_s else None,
            "rss_before_mib": round(before / 2**20, 1),
            "rss_after_mib": round(after / 2**20, 1),
            "kib_per_connection": round((after - before) / max(alive, 1) / 1024, 2),
            "connect_cpu_s": round(sum(procs.cpu.values()), 2),
        }
    finally:
        await crowd.close()
        await pool.close()


async def direct_messages(target: Target, pairs: int, rate: float, duration: float) -> Result:
    """(B) 1:1 conversations; both sides send; each message reaches both sockets."""
    tag = uuid.uuid4().hex[:4]
    rooms = [[f"dm{tag}-{i}-a", f"dm{tag}-{i}-b"] for i in range(pairs)]
    return await traffic(target, rooms, rate, duration, "direct", kind="direct")


async def rooms_of(
    target: Target,
    size: int,
    rooms: int,
    rate: float,
    duration: float,
    senders: int = 3,
    join_after_connect: bool = True,
) -> Result:
    """(C) Rooms of ``size`` members; a few members of each room send."""
    tag = uuid.uuid4().hex[:4]
    members = [[f"r{tag}-{r}-{m}" for m in range(size)] for r in range(rooms)]
    return await traffic(
        target,
        members,
        rate,
        duration,
        f"room{size}",
        senders_per_room=senders,
        join_after_connect=join_after_connect,
    )


async def broadcast(target: Target, members: int, messages: int, rate: float) -> Result:
    """(D) One room of ``members``; one sender; each message fans out to everyone."""
    tag = uuid.uuid4().hex[:4]
    room = [f"b{tag}-{m}" for m in range(members)]
    return await traffic(
        target,
        [room],
        rate,
        messages / rate,
        "broadcast",
        senders_per_room=1,
        sources=16,
        join_after_connect=True,
    )


async def reconnect_storm(
    target: Target,
    clients: int,
    room_size: int = 10,
    rate: float = 50,
    window: float = 10,
) -> Result:
    """(E) Traffic flows; every client drops and reconnects within ``window`` seconds,
    sends ``sync`` with the last seq it had, and must end with every acked message.

    Catch-up latency: from the moment a client starts reconnecting to its sync ack.
    """
    tag = uuid.uuid4().hex[:4]
    n_rooms = max(clients // room_size, 1)
    rooms = [[f"s{tag}-{r}-{m}" for m in range(room_size)] for r in range(n_rooms)]
    rec = Deliveries()
    pool = SourcePool(8)
    crowd = Crowd(target, rec, pool)
    catchup = new_histogram()
    sync_errors = 0
    try:
        convs = [await target.make_room(m) for m in rooms]
        pairs = [(u, [c]) for c, m in zip(convs, rooms, strict=True) for u in m]
        live = await crowd.connect(pairs)
        await settle(target)
        senders = [(c, c.rooms[0]) for c in live if c.user.endswith("-0")]
        duration = window + 6
        sending = asyncio.create_task(
            open_loop(target, rec, senders, rate, duration, f"storm-{tag}")
        )
        await asyncio.sleep(2)
        loop = asyncio.get_running_loop()
        storm_start = loop.time()
        urls = target.urls()

        async def bounce(c: Client, at: float) -> None:
            nonlocal sync_errors
            await asyncio.sleep(max(at - loop.time(), 0))
            began = loop.time()
            await c.sock.close()
            sock = RawSocket(pool.session(), random.choice(urls), crowd._handler(c.receiver))
            for attempt in range(5):
                try:
                    await sock.connect(target.auth(c.user, c.rooms))
                    break
                except Exception:
                    if attempt == 4:
                        sync_errors += 1
                        return
                    await asyncio.sleep(0.5)
            c.sock = sock
            conv = c.rooms[0]
            since = rec.highest.get((c.receiver, conv), 0)
            while True:
                try:
                    ack = await sock.call("sync", {"conversations": {conv: since}}, wait_s=30)
                except Exception:
                    sync_errors += 1
                    return
                got = (ack or {}).get("messages", {}).get(conv, []) if ack else []
                if not (ack or {}).get("ok"):
                    sync_errors += 1
                    return
                rec.on_replayed(c.receiver, conv, [int(m["seq"]) for m in got])
                if len(got) < 1000:
                    break
                since = int(got[-1]["seq"])
            record_seconds(catchup, loop.time() - began)

        if isinstance(target, ConfabTarget):
            meter = ProcessMeter(target.all_pids())
            meter.start()
            await asyncio.gather(
                *(bounce(c, storm_start + random.uniform(0, window)) for c in live)
            )
            storm_s = loop.time() - storm_start
            meter.stop()
        else:
            raise ValueError("the reconnect storm needs Confab's sync")
        sends = await sending
        await all_acked(sends)
        listeners = crowd.listeners()
        await drain(rec, rec.expected(listeners), limit=60)
        # Replayed messages are not counted as deliveries, so the count above cannot
        # reach the expected: wait until the gateways have worked off their backlog too.
        lag_zero = 0
        for _ in range(60):
            lag_zero = lag_zero + 1 if not await consumer_lag(target) else 0
            if lag_zero >= 3:
                break
            await asyncio.sleep(1)
        await asyncio.sleep(3)
        return {
            "target": target.name,
            "clients": len(live),
            "rooms": n_rooms,
            "window_s": window,
            "storm_s": round(storm_s, 1),
            "rate": rate,
            "scheduled": sends.scheduled,
            "acked": sends.acked,
            "send_errors": dict(sends.errors),
            "expected_deliveries": rec.expected(listeners),
            "lost": rec.losses(listeners),
            "sync_errors": sync_errors,
            "order_violations_live": rec.order_violations,
            "repeats_live_after_replay": rec.duplicates,
            "catchup": summarize(catchup),
            "live_latency": summarize(rec.latency),
            "storm_cpu_s": {k: round(v, 2) for k, v in meter.cpu.items()},
        }
    finally:
        await crowd.close()
        await pool.close()


async def preload_history(target: ConfabTarget, messages: int, batch: int = 5000) -> str:
    """A conversation with ``messages`` messages, inserted straight into MongoDB in the
    conversation service's schema (storage/messages.py, handlers/messages.py), with the
    conversation's ``last_seq`` moved to match."""
    from pymongo import AsyncMongoClient

    owner = f"hist-{uuid.uuid4().hex[:4]}"
    conv = await target.make_room([owner, owner + "-peer"])
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(target.fleet.mongo.url)
    db = client["confab_conversation"]
    now = time.time()
    from datetime import UTC, datetime

    created = datetime.fromtimestamp(now, UTC)
    try:
        for start in range(1, messages + 1, batch):
            docs = [
                {
                    "_id": uuid.uuid4().hex,
                    "tenant_id": BENCH_TENANT,
                    "conversation_id": conv,
                    "sender_id": owner,
                    "sender_name": owner.title(),
                    "kind": 1,
                    "text": f"preloaded message number {seq} " + "x" * 60,
                    "client_msg_id": f"pre-{seq}",
                    "created_at": created,
                    "thread_root_id": "",
                    "deleted": False,
                    "reply_count": 0,
                    "mentions": [],
                    "mentions_all": False,
                    "reactions": [],
                    "file": None,
                    "search_terms": ["preloaded", "message", "number", str(seq)],
                    "seq": seq,
                }
                for seq in range(start, min(start + batch, messages + 1))
            ]
            await db["messages"].insert_many(docs, ordered=False)
        await db["conversations"].update_one(
            {"tenant_id": BENCH_TENANT, "_id": conv},
            {"$set": {"last_seq": messages}},
        )
    finally:
        await client.close()
    return conv + "|" + owner


async def history_under_load(
    target: ConfabTarget,
    preload: int,
    page_rate: float,
    duration: float,
    dm_pairs: int,
    dm_rate: float,
) -> Result:
    """(F) Open-loop pages of 50 (random ``before_seq``) while (B) runs."""
    t = time.perf_counter()
    handle = await preload_history(target, preload)
    preload_s = time.perf_counter() - t
    conv, owner = handle.split("|")
    pages = new_histogram()
    failures: dict[str, int] = {}

    async def read_pages() -> Result:
        loop = asyncio.get_running_loop()
        async with target.api(owner) as api:
            t0 = loop.time() + 0.2
            tasks = []

            async def one(intended: float) -> None:
                before = random.randint(51, preload + 1)
                try:
                    r = await api.get(
                        f"/conversations/{conv}/messages",
                        params={"before_seq": before, "limit": 50},
                    )
                    if r.status_code != 200 or len(r.json().get("messages", [])) != 50:
                        key = str(r.status_code)
                        failures[key] = failures.get(key, 0) + 1
                except Exception as exc:
                    key = type(exc).__name__
                    failures[key] = failures.get(key, 0) + 1
                record_seconds(pages, loop.time() - intended)

            for i in range(int(page_rate * duration)):
                intended = t0 + i / page_rate
                delay = intended - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(intended)))
            await asyncio.gather(*tasks)
        return {
            "preload": preload,
            "preload_s": round(preload_s, 1),
            "page_rate": page_rate,
            "page_failures": failures,
            "page": summarize(pages),
        }

    tag = uuid.uuid4().hex[:4]
    rooms = [[f"hdm{tag}-{i}-a", f"hdm{tag}-{i}-b"] for i in range(dm_pairs)]
    return await traffic(
        target, rooms, dm_rate, duration, "hist-dm", kind="direct", during=read_pages
    )
