"""Turns the Kafka event streams into socket events for the rooms this pod holds.

Every gateway pod reads every event (its own consumer group), so any pod can
hold any client. The relay may publish an event twice; per-conversation
event_seq lets the pod drop the repeat before a client ever sees it.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

import socketio
from aiokafka import ConsumerRecord
from prometheus_client import Counter, Histogram

from confab.conversation.v1 import events_pb2 as cev
from confab.presence.v1 import events_pb2 as pev
from confab_core.kafka import CONVERSATION_EVENTS_TOPIC, PRESENCE_EVENTS_TOPIC
from confab_core.telemetry import tracer
from gateway import convert
from gateway.realtime import rooms

log = logging.getLogger(__name__)

EMITTED = Counter("confab_gateway_events_emitted_total", "Socket events emitted", ["event"])
DUPLICATES = Counter("confab_gateway_duplicate_events_total", "Repeated events dropped")
DELIVERY_SECONDS = Histogram(
    "confab_gateway_send_to_emit_seconds",
    "From a message's store time to its emit on this pod",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
_DEDUPE_WINDOW = 200_000


class Fanout:
    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio
        self._last_seq: OrderedDict[str, int] = OrderedDict()

    async def handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is None:
            return
        if record.topic == CONVERSATION_EVENTS_TOPIC:
            event = cev.ConversationEvent.FromString(record.value)
            if self._seen(event):
                DUPLICATES.inc()
                return
            with tracer().start_as_current_span(
                "confab.gateway.fanout",
                attributes={
                    "confab.tenant_id": event.tenant_id,
                    "confab.conversation_id": event.conversation_id,
                    "confab.event_seq": event.event_seq,
                },
            ):
                await self._conversation_event(event)
        elif record.topic == PRESENCE_EVENTS_TOPIC:
            pevent = pev.PresenceEvent.FromString(record.value)
            payload = convert.presence(pevent.presence).model_dump(mode="json")
            await self._emit("presence:updated", payload, rooms.tenant(pevent.tenant_id))

    def _seen(self, event: cev.ConversationEvent) -> bool:
        key = f"{event.tenant_id}:{event.conversation_id}"
        last = self._last_seq.get(key, 0)
        if event.event_seq <= last:
            return True
        self._last_seq[key] = event.event_seq
        self._last_seq.move_to_end(key)
        if len(self._last_seq) > _DEDUPE_WINDOW:
            self._last_seq.popitem(last=False)
        return False

    async def _conversation_event(self, event: cev.ConversationEvent) -> None:
        room = rooms.conversation(event.tenant_id, event.conversation_id)
        kind = event.WhichOneof("payload")
        if kind == "message_created":
            msg = event.message_created.message
            await self._emit("message:new", convert.message(msg).model_dump(mode="json"), room)
            DELIVERY_SECONDS.observe(max(0.0, time.time() - msg.created_at.ToMicroseconds() / 1e6))
        elif kind == "conversation_created":
            created = event.conversation_created
            payload = convert.conversation(created.conversation).model_dump(mode="json")
            for user_id in created.member_ids:
                user_room = rooms.user(event.tenant_id, user_id)
                for sid, _ in list(self._sio.manager.get_participants("/", user_room)):
                    await self._sio.enter_room(sid, room)
                await self._emit("conversation:created", payload, user_room)
        elif kind == "read_marker_changed":
            marker = event.read_marker_changed
            await self._emit(
                "receipt:updated",
                {
                    "conversation_id": event.conversation_id,
                    "user_id": marker.user_id,
                    "last_read_seq": marker.last_read_seq,
                },
                room,
            )

    async def _emit(self, name: str, payload: dict[str, object], room: str) -> None:
        await self._sio.emit(name, payload, room=room)
        EMITTED.labels(name).inc()
