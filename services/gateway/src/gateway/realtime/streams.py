"""Streamed bot replies: ``confab.bot-streams`` to ``message:stream`` in the rooms.

Every pod reads every stream event (a group per pod, from latest, like the
conversation events) and keeps the text so far of each running stream in a
bounded buffer, so a socket that joins mid-stream (``conversation:join``,
``sync``) gets one ``message:stream`` with ``text`` and ``index``, then the
live deltas. A pod that missed a stream's beginning (it started mid-stream, or
lost an event) holds only what came after; it asks the bot for the text so far
(BotStreamService.GetStream, as the joining member), and when another bot pod
runs the stream, that pod answers with a snapshot event on the topic. Nothing
here touches MongoDB.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import socketio
from aiokafka import ConsumerRecord
from prometheus_client import Counter
from pydantic import ValidationError

from confab.bot.v1 import stream_pb2 as spb
from confab.conversation.v1 import conversation_pb2 as cpb
from confab_core.clock import Clock, SystemClock
from confab_core.errors import ConfabError
from confab_core.identity import Caller
from confab_core.sealed_events import SealedOpener
from gateway import convert
from gateway.realtime import rooms

log = logging.getLogger(__name__)

STREAM_EVENT = "message:stream"
STREAM_EMITS = Counter(
    "confab_gateway_stream_emits_total", "message:stream events emitted", ["kind"]
)
# Running streams one pod remembers; a stream idle this long is forgotten (its
# bot pod died before the end, which the stored message, if any, supersedes).
MAX_STREAMS = 10_000
STREAM_TTL_SECONDS = 300.0

# Asks the bot for a running stream's text so far, as the joining member.
SnapshotSource = Callable[[Caller, str, str], Awaitable[spb.GetStreamResponse]]


@dataclass
class _Stream:
    tenant_id: str
    conversation_id: str
    message_id: str
    sender_id: str
    sender_name: str
    touched: float
    # The text of deltas 1..index, when ``whole``; else only ``tail`` is known.
    text: str = ""
    index: int = 0
    whole: bool = True
    tail: list[tuple[int, str]] = field(default_factory=list)
    # Sockets that joined while the text was unknown: they get it with the snapshot.
    waiting: set[str] = field(default_factory=set)

    def head(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "message_id": self.message_id,
            "sender_id": self.sender_id,
            "sender_name": self.sender_name,
        }

    def know(self, text: str, index: int) -> None:
        """The text of deltas 1..index, from the bot: what came after it stays."""
        later = [(i, d) for i, d in self.tail if i > index]
        self.text = text + "".join(d for _, d in later)
        self.index = max(index, self.index)
        self.whole, self.tail = True, []


class StreamRelay:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        events: SealedOpener[spb.StreamEvent],
        snapshots: SnapshotSource | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._sio = sio
        self._events = events
        self._snapshots = snapshots
        self._clock = clock or SystemClock()
        self._streams: OrderedDict[tuple[str, str], _Stream] = OrderedDict()
        self._by_conversation: dict[tuple[str, str], set[str]] = {}

    async def handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        event = await self._events.open(record)
        if event is None:
            return
        self._expire()
        kind = event.WhichOneof("payload")
        key = (event.tenant_id, event.message_id)
        room = rooms.conversation(event.tenant_id, event.conversation_id)
        stream = self._streams.get(key)
        if kind == "started":
            if stream is None:
                stream = self._add(event, whole=True)
            await self._emit({**stream.head(), "index": 0, "delta": ""}, room, "start")
        elif kind == "delta":
            if stream is None:
                # Missed the beginning: only what follows is known.
                stream = self._add(event, whole=False)
            if event.index <= stream.index:
                return
            delta = event.delta.text
            if stream.whole and event.index == stream.index + 1:
                stream.text += delta
            else:
                stream.whole = False
                stream.tail.append((event.index, delta))
            stream.index = event.index
            stream.touched = self._clock.monotonic()
            self._streams.move_to_end(key)
            await self._emit({**stream.head(), "index": event.index, "delta": delta}, room, "delta")
        elif kind == "snapshot":
            if stream is None or stream.whole:
                return
            stream.know(event.snapshot.text, event.index)
            await self._serve_waiting(stream)
        elif kind == "ended":
            if stream is not None:
                self._drop(stream)
            ended = event.ended
            try:
                message = convert.message(ended.message).model_dump(mode="json")
            except ValidationError:
                # A retry cannot fix it: dropped, like an undecodable record.
                log.error("dropping a stream end whose message is malformed")
                return
            await self._emit(
                {
                    "conversation_id": event.conversation_id,
                    "message_id": event.message_id,
                    "sender_id": event.sender_id,
                    "sender_name": event.sender_name,
                    "index": event.index,
                    "done": True,
                    "state": _state(ended.state),
                    "message": message,
                },
                room,
                "end",
            )

    async def catch_up(self, sid: str, caller: Caller, conversation_ids: Iterable[str]) -> None:
        """Sends ``sid`` the text so far of every stream running in these conversations."""
        for conversation_id in conversation_ids:
            ids = self._by_conversation.get((caller.tenant_id, conversation_id))
            for message_id in sorted(ids or ()):
                stream = self._streams.get((caller.tenant_id, message_id))
                if stream is None:
                    continue
                if stream.whole:
                    await self._send_text(stream, sid)
                    continue
                stream.waiting.add(sid)
                await self._ask(caller, stream)

    async def _ask(self, caller: Caller, stream: _Stream) -> None:
        if self._snapshots is None:
            return
        try:
            resp = await self._snapshots(caller, stream.conversation_id, stream.message_id)
        except ConfabError as exc:
            # The end event still brings the whole message.
            log.warning("asking the bot for a stream's text failed: %s", exc.message)
            return
        if resp.found and not stream.whole:
            stream.know(resp.text, resp.index)
            await self._serve_waiting(stream)

    async def _serve_waiting(self, stream: _Stream) -> None:
        waiting, stream.waiting = stream.waiting, set()
        for sid in waiting:
            await self._send_text(stream, sid)

    async def _send_text(self, stream: _Stream, sid: str) -> None:
        await self._sio.emit(
            STREAM_EVENT, {**stream.head(), "index": stream.index, "text": stream.text}, to=sid
        )
        STREAM_EMITS.labels("text").inc()

    async def _emit(self, payload: dict[str, Any], room: str, kind: str) -> None:
        await self._sio.emit(STREAM_EVENT, payload, room=room)
        STREAM_EMITS.labels(kind).inc()

    def _add(self, event: spb.StreamEvent, *, whole: bool) -> _Stream:
        stream = _Stream(
            tenant_id=event.tenant_id,
            conversation_id=event.conversation_id,
            message_id=event.message_id,
            sender_id=event.sender_id,
            sender_name=event.sender_name,
            touched=self._clock.monotonic(),
            whole=whole,
        )
        self._streams[(event.tenant_id, event.message_id)] = stream
        self._by_conversation.setdefault((event.tenant_id, event.conversation_id), set()).add(
            event.message_id
        )
        while len(self._streams) > MAX_STREAMS:
            self._drop(next(iter(self._streams.values())))
        return stream

    def _drop(self, stream: _Stream) -> None:
        self._streams.pop((stream.tenant_id, stream.message_id), None)
        conv_key = (stream.tenant_id, stream.conversation_id)
        ids = self._by_conversation.get(conv_key)
        if ids is not None:
            ids.discard(stream.message_id)
            if not ids:
                del self._by_conversation[conv_key]

    def _expire(self) -> None:
        cutoff = self._clock.monotonic() - STREAM_TTL_SECONDS
        while self._streams:
            oldest = next(iter(self._streams.values()))
            if oldest.touched >= cutoff:
                return
            self._drop(oldest)


def _state(state: int) -> str:
    return convert.enum_name(cpb.StreamState, state, "STREAM_STATE_")
