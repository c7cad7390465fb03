"""A resuming Socket.IO client and a steady REST sender: the delivery contract's probes.

``ResumingClient`` is what a well-behaved app does with Confab's socket protocol
(docs/events.md, "Resuming"): it keeps the highest ``seq`` (mode ``"messages"``) or
``event_seq`` (mode ``"events"``) it has applied per conversation, applies only the
next one, drops repeats, and fills any hole with ``sync``. When its connection drops
it reconnects to the next gateway of its list (round-robin, bounded backoff, overall
deadline) and syncs from where it was. It records everything it applied, in order,
and counts what it had to drop or repair, so a test can assert exactly-once and order.

``SteadySender`` posts messages at a fixed rate over REST, each with its own
``client_msg_id``, retrying the same id until it is acknowledged, so a retry can never
make a second message.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import httpx
import socketio

Mode = Literal["messages", "events"]

# Conversation events delivered to the conversation's room, in its event_seq stream.
# conversation:joined / conversation:removed go to a user's own room and repeat the
# event_seq of member:added / member:removed, so they are not part of that stream.
_USER_ROOM_ONLY = {"conversation:joined", "conversation:removed"}
# sync answers at most this many messages per conversation per call (docs/events.md).
SYNC_LIMIT = 1000


def _created_at(message: dict[str, Any]) -> float | None:
    raw = message.get("created_at")
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass
class Applied:
    """One applied item: a message (mode messages) or an event (mode events)."""

    seq: int
    event: str
    data: dict[str, Any]
    source: Literal["live", "sync"]
    url: str


class ResumingClient:
    def __init__(
        self,
        name: str,
        urls: list[str],
        token: str,
        *,
        conversations: Iterable[str] = (),
        transports: list[str] | None = None,
        mode: Mode = "messages",
        start_index: int = 0,
        reconnect_deadline: float = 60.0,
        backoff: tuple[float, float] = (0.05, 1.0),
        call_timeout: float = 15.0,
    ) -> None:
        if not urls:
            raise ValueError("give at least one gateway url")
        self.name = name
        self.urls = list(urls)
        self.token = token
        self.transports = transports or ["websocket"]
        self.mode: Mode = mode
        self.reconnect_deadline = reconnect_deadline
        self.backoff = backoff
        self.call_timeout = call_timeout
        self._index = start_index % len(self.urls)

        # What the client has: the last applied seq per conversation, and all of it.
        self.last: dict[str, int] = {c: 0 for c in conversations}
        self.applied: dict[str, list[Applied]] = {c: [] for c in self.last}
        # Arrived ahead of a hole; applied once the hole is filled.
        self.pending: dict[str, dict[int, Applied]] = {c: {} for c in self.last}
        # mode events: conversations whose events are no longer kept (reload over REST).
        self.resync_required: dict[str, bool] = {}

        # Counters for the report.
        self.connects = 0
        self.reconnects = 0
        self.disconnects = 0
        self.raw_duplicates = 0  # live deliveries at or below what was applied: dropped
        # (conversation, seq, gateway url, monotonic time) of those, for reports
        self.dropped: list[tuple[str, int, str, float]] = []
        self.replay_overlap = 0  # sync answers at or below what was applied: dropped
        self.live_gaps = 0  # live deliveries above last+1 outside a sync: holes to fill
        self.syncs = 0
        self.sync_errors: list[Any] = []
        self.order_violations: list[tuple[str, int, int]] = []  # (conv, after, got) on one link
        self.same_link_duplicates = 0  # one connection delivering a seq twice
        self.max_delay = 0.0  # store time -> applied, over all applied messages
        self.errors: list[str] = []
        self.urls_used: list[str] = []

        self._sio: socketio.AsyncClient | None = None
        self._generation = 0
        self._arrivals: dict[tuple[int, str], int] = {}
        self._closing = False
        self._paused = False
        self._reconnect_task: asyncio.Task[None] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.url = ""

    # -- public ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._sio is not None and self._sio.connected

    @property
    def busy(self) -> bool:
        """Reconnecting or syncing."""
        return any(t is not None and not t.done() for t in (self._reconnect_task, self._sync_task))

    def track(self, conversation_id: str) -> None:
        """Follows one more conversation from its beginning; the next sync fills it."""
        if conversation_id not in self.last:
            self.last[conversation_id] = 0
            self.applied[conversation_id] = []
            self.pending[conversation_id] = {}
            self._request_sync()

    async def start(self) -> None:
        """Connects to the first gateway and syncs every tracked conversation."""
        await self._connect_any(advance=False)
        await self.settled()

    async def pause(self) -> None:
        """Disconnects cleanly and stays away until ``resume``."""
        self._paused = True
        await self._cancel(self._sync_task)
        sio = self._sio
        if sio is not None and sio.connected:
            await self._hang_up(sio)

    async def resume(self) -> None:
        """Reconnects (to the next gateway) and syncs what was missed."""
        self._paused = False
        self._start_reconnect()
        await self.settled()

    async def drop(self) -> None:
        """Cuts the transport without a goodbye, as a network failure would; the client
        notices and reconnects by itself."""
        sio = self._sio
        if sio is not None:
            await sio.eio.disconnect(abort=True)

    async def close(self) -> None:
        self._closing = True
        await self._cancel(self._reconnect_task)
        await self._cancel(self._sync_task)
        sio, self._sio = self._sio, None
        if sio is not None:
            with contextlib.suppress(Exception):
                await self._hang_up(sio)

    async def call(self, event: str, data: Any, timeout: float | None = None) -> Any:
        if self._sio is None:
            raise RuntimeError(f"{self.name} is not connected")
        return await self._sio.call(event, data, timeout=timeout or self.call_timeout)

    async def settled(self, timeout: float | None = None) -> None:
        """Waits until the client is connected and neither reconnecting nor syncing."""
        deadline = time.monotonic() + (timeout or self.reconnect_deadline + 30)
        while self.busy or not self.connected:
            if self.errors:
                raise AssertionError(f"{self.name}: {self.errors}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not settle; {self.describe()}")
            await self._wait_change(0.1)

    async def wait_applied(
        self, conversation_id: str, count: int, timeout: float = 20.0
    ) -> list[Applied]:
        """Waits until ``count`` items of the conversation are applied (exactly: more
        would be a failure of its own, caught by the caller's assertions)."""
        deadline = time.monotonic() + timeout
        while len(self.applied.get(conversation_id, [])) < count:
            if self.errors:
                raise AssertionError(f"{self.name}: {self.errors}")
            if time.monotonic() > deadline:
                have = len(self.applied.get(conversation_id, []))
                raise AssertionError(
                    f"{self.name}: {have}/{count} applied in {conversation_id} after "
                    f"{timeout}s; {self.describe()}"
                )
            await self._wait_change(0.2)
        return self.applied[conversation_id]

    def sources(self, conversation_id: str) -> dict[int, str]:
        return {a.seq: a.source for a in self.applied.get(conversation_id, [])}

    def seqs(self, conversation_id: str) -> list[int]:
        return [a.seq for a in self.applied.get(conversation_id, [])]

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        """The messages applied, in order (mode events: the message:new events)."""
        return [a.data for a in self.applied.get(conversation_id, []) if a.event == "message:new"]

    def describe(self) -> str:
        last = {c[:8]: n for c, n in self.last.items()}
        pend = {c[:8]: sorted(p)[:5] for c, p in self.pending.items() if p}
        return (
            f"url={self.url} connected={self.connected} last={last} pending={pend} "
            f"reconnects={self.reconnects} syncs={self.syncs} sync_errors={self.sync_errors[-3:]}"
        )

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "transports": self.transports,
            "connects": self.connects,
            "reconnects": self.reconnects,
            "disconnects": self.disconnects,
            "raw_duplicates": self.raw_duplicates,
            "replay_overlap": self.replay_overlap,
            "live_gaps": self.live_gaps,
            "syncs": self.syncs,
            "sync_errors": len(self.sync_errors),
            "order_violations": len(self.order_violations),
            "same_link_duplicates": self.same_link_duplicates,
            "max_delay_s": round(self.max_delay, 3),
            "applied": {c: len(a) for c, a in self.applied.items()},
        }

    # -- connection --------------------------------------------------------------

    async def _connect_any(self, *, advance: bool) -> None:
        """Connects to a gateway of the list, from the next one when ``advance``,
        round-robin, until the deadline."""
        deadline = time.monotonic() + self.reconnect_deadline
        delay = self.backoff[0]
        last_error: BaseException | None = None
        first = True
        while not self._closing:
            if advance or not first:
                self._index = (self._index + 1) % len(self.urls)
            first = False
            url = self.urls[self._index]
            try:
                await self._connect(url)
                return
            except (socketio.exceptions.ConnectionError, OSError, TimeoutError) as exc:
                last_error = exc
            if time.monotonic() > deadline:
                self.errors.append(f"no gateway took the connection: {last_error!r}")
                raise AssertionError(f"{self.name}: {self.errors[-1]}")
            await asyncio.sleep(delay)  # bounded backoff between attempts
            delay = min(delay * 2, self.backoff[1])

    async def _connect(self, url: str) -> None:
        sio = socketio.AsyncClient(reconnection=False)
        self._generation += 1
        generation = self._generation

        @sio.on("*")
        def _any(event: str, data: Any = None) -> None:
            self._on_event(generation, event, data)

        @sio.on("disconnect")
        def _gone(reason: Any = None) -> None:
            self._on_disconnect(sio)

        try:
            await sio.connect(
                url,
                auth={"token": self.token},
                transports=self.transports,
                wait_timeout=10,
                retry=False,
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await sio.disconnect()
            raise
        self._sio = sio
        self.url = url
        self.urls_used.append(url)
        self.connects += 1
        self._changed.set()
        # After any connect: replay what was missed (and join the rooms).
        self._request_sync()

    @staticmethod
    async def _hang_up(sio: socketio.AsyncClient) -> None:
        """Says goodbye and leaves. Over long-polling, a plain disconnect waits for the
        pending poll to come back (up to the ping interval, 25 s), so do not wait."""
        if sio.transport() == "polling":
            await sio.eio.disconnect(abort=True)
        else:
            await sio.disconnect()

    def _on_disconnect(self, sio: socketio.AsyncClient) -> None:
        if sio is not self._sio:
            return
        self.disconnects += 1
        self._changed.set()
        if self._closing or self._paused:
            return
        self._start_reconnect()

    def _start_reconnect(self) -> None:
        if self._reconnect_task is not None and not self._reconnect_task.done():
            return
        self._reconnect_task = asyncio.create_task(self._reconnect(), name=f"{self.name}-reconn")

    async def _reconnect(self) -> None:
        await self._cancel(self._sync_task)
        old, self._sio = self._sio, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.disconnect()
        try:
            await self._connect_any(advance=True)
        except AssertionError:
            return
        self.reconnects += 1

    @staticmethod
    async def _cancel(task: asyncio.Task[None] | None) -> None:
        if task is None or task.done() or task is asyncio.current_task():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def _wait_change(self, timeout: float) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    # -- live events ---------------------------------------------------------------

    def _on_event(self, generation: int, event: str, data: Any) -> None:
        # Synchronous on purpose: events are applied in the order they arrived.
        if not isinstance(data, dict):
            return
        conv = data.get("conversation_id")
        if conv not in self.last:
            return
        if self.mode == "messages":
            if event != "message:new":
                return
            seq = data.get("seq")
        else:
            if event in _USER_ROOM_ONLY or "event_seq" not in data:
                return
            seq = data.get("event_seq")
        if not isinstance(seq, int):
            self.errors.append(f"{event} without an integer seq: {data!r}")
            return
        key = (generation, conv)
        before = self._arrivals.get(key)
        if before is not None:
            if seq == before:
                self.same_link_duplicates += 1
            elif seq < before:
                self.order_violations.append((conv, before, seq))
        self._arrivals[key] = max(seq, before or 0)
        self._offer(conv, Applied(seq, event, data, "live", self.url), live=True)

    def _offer(self, conv: str, item: Applied, *, live: bool) -> None:
        last = self.last[conv]
        if item.seq <= last:
            if live:
                self.raw_duplicates += 1
                self.dropped.append((conv, item.seq, item.url, time.monotonic()))
            else:
                self.replay_overlap += 1
            return
        if item.seq > last + 1:
            if self.resync_required.get(conv):
                return
            if live and not self.busy and item.seq not in self.pending[conv]:
                self.live_gaps += 1
            self.pending[conv].setdefault(item.seq, item)
            self._request_sync()
            return
        self._apply(conv, item)
        pending = self.pending[conv]
        while self.last[conv] + 1 in pending:
            self._apply(conv, pending.pop(self.last[conv] + 1))
        for seq in [s for s in pending if s <= self.last[conv]]:
            del pending[seq]
            if live:
                self.raw_duplicates += 1
                self.dropped.append((conv, seq, self.url, time.monotonic()))

    def _apply(self, conv: str, item: Applied) -> None:
        assert item.seq == self.last[conv] + 1
        self.last[conv] = item.seq
        self.applied[conv].append(item)
        if item.event == "message:new":
            stored = _created_at(item.data)
            if stored is not None:
                self.max_delay = max(self.max_delay, time.time() - stored)
        self._changed.set()

    # -- sync ----------------------------------------------------------------------

    def _request_sync(self) -> None:
        if self._closing or self._paused or self._sio is None:
            return
        reconnecting = self._reconnect_task
        if (
            reconnecting is not None
            and not reconnecting.done()
            and reconnecting is not asyncio.current_task()
        ):
            return  # _connect requests one once the new link is up
        if self._sync_task is not None and not self._sync_task.done():
            return
        self._sync_task = asyncio.create_task(self._sync_loop(), name=f"{self.name}-sync")

    def _holes(self) -> bool:
        return any(
            p and not self.resync_required.get(c) and min(p) > self.last[c] + 1
            for c, p in self.pending.items()
        )

    async def _sync_loop(self) -> None:
        delay = self.backoff[0]
        deadline = time.monotonic() + self.reconnect_deadline
        todo = {c for c in self.last if not self.resync_required.get(c)}
        while todo:
            sio = self._sio
            if sio is None or not sio.connected:
                return  # the reconnect syncs again
            try:
                todo = await self._sync_once(sio, todo)
            except (TimeoutError, socketio.exceptions.SocketIOError) as exc:
                self.sync_errors.append(repr(exc))
                if sio is not self._sio or not sio.connected:
                    return
                todo = todo or set(self.last)
            if not todo and self._holes():
                todo = {c for c in self.last if not self.resync_required.get(c)}
            if todo and self.sync_errors and time.monotonic() > deadline:
                self.errors.append(f"sync kept failing: {self.sync_errors[-3:]}")
                return
            if todo:
                await asyncio.sleep(delay)  # bounded backoff between sync calls
                delay = min(delay * 2, self.backoff[1])

    async def _sync_once(self, sio: socketio.AsyncClient, todo: set[str]) -> set[str]:
        """One sync call for ``todo``; returns the conversations that need another."""
        body: dict[str, Any] = {"conversations": {c: self.last[c] for c in sorted(todo)}}
        if self.mode == "events":
            body["mode"] = "events"
        self.syncs += 1
        ack = await sio.call("sync", body, timeout=self.call_timeout)
        if not isinstance(ack, dict) or not ack.get("ok"):
            self.sync_errors.append(ack)
            return todo
        again: set[str] = set()
        for conv, err in (ack.get("errors") or {}).items():
            self.sync_errors.append({conv: err})
            again.add(conv)
        if self.mode == "messages":
            for conv, messages in (ack.get("messages") or {}).items():
                for m in messages:
                    self._offer(
                        conv, Applied(m["seq"], "message:new", m, "sync", self.url), live=False
                    )
                if len(messages) >= SYNC_LIMIT:
                    again.add(conv)
        else:
            for conv, events in (ack.get("events") or {}).items():
                if (ack.get("resync_required") or {}).get(conv):
                    self.resync_required[conv] = True
                    self.pending[conv].clear()
                    if events:
                        self.errors.append(f"resync_required with {len(events)} events in {conv}")
                    continue
                for e in events:
                    data = dict(e["data"])
                    if e["conversation_id"] != conv or data.get("event_seq") != e["event_seq"]:
                        self.errors.append(f"replayed event does not match itself: {e!r}")
                    self._offer(
                        conv,
                        Applied(e["event_seq"], e["event"], data, "sync", self.url),
                        live=False,
                    )
                if (ack.get("has_more") or {}).get(conv):
                    again.add(conv)
        return again


@dataclass
class Ack:
    client_msg_id: str
    seq: int
    message_id: str
    created: bool
    acked_at: float
    attempts: int


@dataclass
class SteadySender:
    """Sends ``count`` messages to one conversation at ``rate`` per second over REST.

    Each message is retried with the same ``client_msg_id`` on a 5xx, a 429 or a
    connection error (on the next gateway of the list for the latter) until acked.
    """

    name: str
    urls: list[str]
    token: str
    conversation_id: str
    count: int
    rate: float
    deadline: float = 120.0
    acks: list[Ack] = field(default_factory=list)
    attempts: int = 0
    retries: int = 0
    retry_reasons: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._index = 0
        self._stop = False

    def stop(self) -> None:
        self._stop = True

    async def run(self) -> list[Ack]:
        clients = [
            httpx.AsyncClient(
                base_url=f"{u}/api/v1",
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=20,
            )
            for u in self.urls
        ]
        start = time.monotonic()
        try:
            for i in range(self.count):
                if self._stop:
                    break
                # Fixed-rate pacing: message i leaves at start + i / rate (or at once
                # when an outage put the sender behind).
                due = start + i / self.rate
                now = time.monotonic()
                if due > now:
                    await asyncio.sleep(due - now)
                ack = await self._send_one(clients, f"{self.name}-{i:05d}", f"{self.name} #{i}")
                if ack is None:
                    break
                self.acks.append(ack)
        finally:
            for c in clients:
                await c.aclose()
        return self.acks

    async def _send_one(self, clients: list[httpx.AsyncClient], cmid: str, text: str) -> Ack | None:
        delay = 0.05
        deadline = time.monotonic() + self.deadline
        attempts = 0
        while True:
            attempts += 1
            self.attempts += 1
            reason = ""
            try:
                resp = await clients[self._index].post(
                    f"/conversations/{self.conversation_id}/messages",
                    json={"text": text, "client_msg_id": cmid},
                )
                if resp.status_code in (200, 201):
                    msg = resp.json()["message"]
                    return Ack(
                        cmid,
                        int(msg["seq"]),
                        str(msg["id"]),
                        resp.status_code == 201,
                        time.time(),
                        attempts,
                    )
                if resp.status_code >= 500 or resp.status_code == 429:
                    reason = f"http {resp.status_code}"
                else:
                    self.errors.append(f"{cmid}: {resp.status_code} {resp.text}")
                    return None
            except httpx.TransportError as exc:
                reason = type(exc).__name__
                self._index = (self._index + 1) % len(clients)
            self.retries += 1
            self.retry_reasons[reason] = self.retry_reasons.get(reason, 0) + 1
            if time.monotonic() > deadline:
                self.errors.append(f"{cmid}: not acked after {self.deadline}s ({reason})")
                return None
            await asyncio.sleep(delay)  # bounded backoff before the retry
            delay = min(delay * 2, 1.0)
