"""Turns the Kafka event streams into socket events for the rooms this pod holds.

Every gateway pod reads every event (its own consumer group), so any pod can
hold any client. The relay may publish an event twice; per-conversation
event_seq lets the pod drop the repeat before a client ever sees it.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import socketio
from aiokafka import ConsumerRecord
from prometheus_client import Counter, Histogram

from confab.conversation.v1 import events_pb2 as cev
from confab.presence.v1 import events_pb2 as pev
from confab_core.clock import Clock, SystemClock
from confab_core.errors import ConfabError
from confab_core.kafka import CONVERSATION_EVENTS_TOPIC, PRESENCE_EVENTS_TOPIC, decode
from confab_core.sealed_events import EventOpener
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


# Lists the conversation ids a user of a tenant is in (for presence visibility).
ConversationsOf = Callable[[str, str], Awaitable[list[str]]]
_SHARED_TTL_SECONDS = 30.0
_SHARED_CACHE_SIZE = 50_000


class Fanout:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        events: EventOpener,
        conversations_of: ConversationsOf | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._sio = sio
        self._events = events
        self._last_seq: OrderedDict[str, int] = OrderedDict()
        self._conversations_of = conversations_of
        self._clock = clock or SystemClock()
        self._shared: OrderedDict[tuple[str, str], tuple[float, list[str]]] = OrderedDict()

    async def handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is None:
            return
        if record.topic == CONVERSATION_EVENTS_TOPIC:
            event = await self._events.open(record)
            if event is None:
                return
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
            # Marked only once emitted: a failed emit is retried by the consumer
            # and must not be mistaken for a repeat then.
            self._mark(event)
        elif record.topic == PRESENCE_EVENTS_TOPIC:
            pevent = decode(record, pev.PresenceEvent)
            if pevent is None:
                return
            kind = pevent.WhichOneof("payload")
            if kind == "presence":
                payload = convert.presence(pevent.presence).model_dump(mode="json")
                targets = await self._presence_rooms(pevent.tenant_id, pevent.presence.user_id)
                await self._emit("presence:updated", payload, targets)
            elif kind == "typing":
                typing = convert.typing(pevent.typing).model_dump(mode="json")
                room = rooms.conversation(pevent.tenant_id, pevent.typing.conversation_id)
                await self._emit("typing", typing, room)

    async def _presence_rooms(self, tenant_id: str, user_id: str) -> list[str]:
        """Staff see the tenant roster; members see people they share a conversation with.

        A socket in several of these rooms still gets the event once.
        """
        targets = [rooms.staff(tenant_id), rooms.user(tenant_id, user_id)]
        if self._conversations_of is None:
            return targets
        key = (tenant_id, user_id)
        now = self._clock.monotonic()
        cached = self._shared.get(key)
        if cached is None or cached[0] < now:
            try:
                ids = await self._conversations_of(tenant_id, user_id)
            except ConfabError as exc:
                # Staff and the user still hear it; members catch up on the next change.
                log.warning("presence visibility lookup failed: %s", exc.message)
                return targets
            cached = (now + _SHARED_TTL_SECONDS, ids)
            self._shared[key] = cached
            if len(self._shared) > _SHARED_CACHE_SIZE:
                self._shared.popitem(last=False)
        return targets + [rooms.conversation(tenant_id, c) for c in cached[1]]

    def _seen(self, event: cev.ConversationEvent) -> bool:
        key = f"{event.tenant_id}:{event.conversation_id}"
        return event.event_seq <= self._last_seq.get(key, 0)

    def _mark(self, event: cev.ConversationEvent) -> None:
        key = f"{event.tenant_id}:{event.conversation_id}"
        self._last_seq[key] = event.event_seq
        self._last_seq.move_to_end(key)
        if len(self._last_seq) > _DEDUPE_WINDOW:
            self._last_seq.popitem(last=False)

    async def _conversation_event(self, event: cev.ConversationEvent) -> None:
        out = convert.event(event)
        if out is None:
            log.warning("dropping conversation event with an unknown payload")
            return
        tenant = event.tenant_id
        room = rooms.conversation(tenant, event.conversation_id)
        kind = event.WhichOneof("payload")
        if kind == "conversation_created":
            # Members' sockets on this pod enter the room before they hear of it,
            # so the first message cannot slip past them.
            for user_id in event.conversation_created.member_ids:
                user_room = rooms.user(tenant, user_id)
                await self._enter(user_room, room)
                await self._emit(out.event, out.data, user_room)
            return
        if kind == "members_added":
            added = list(event.members_added.members)
            for m in added:
                await self._enter(rooms.user(tenant, m.user_id), room)
            await self._emit(out.event, out.data, room)
            for m in added:
                member = convert.member(m)
                await self._emit(
                    "conversation:joined",
                    {
                        "conversation_id": event.conversation_id,
                        "event_seq": event.event_seq,
                        "actor_id": event.actor_id,
                        "user_id": member.user_id,
                        "role": member.role,
                    },
                    rooms.user(tenant, m.user_id),
                )
            return
        if kind in convert.TICKET_EVENTS:
            # The conversation's room too, so its members' event_seq stays gapless.
            await self._emit(out.event, out.data, [room, *ticket_rooms(event)])
            return
        if kind in convert.SANCTION_EVENTS:
            target = rooms.user(tenant, str(out.data["user_id"]))
            await self._emit(out.event, out.data, [room, target])
            return
        await self._emit(out.event, out.data, room)
        if kind == "message_created":
            msg = event.message_created.message
            DELIVERY_SECONDS.observe(max(0.0, time.time() - msg.created_at.ToMicroseconds() / 1e6))
        elif kind == "member_removed":
            # After member:removed, which the removed user's sockets hear too.
            removed = event.member_removed
            user_room = rooms.user(tenant, removed.user_id)
            await self._leave(user_room, room)
            await self._emit(
                "conversation:removed",
                {
                    "conversation_id": event.conversation_id,
                    "event_seq": event.event_seq,
                    "actor_id": event.actor_id,
                    "user_id": removed.user_id,
                    "left": removed.left,
                },
                user_room,
            )
        elif kind == "conversation_deleted":
            await self._sio.close_room(room)

    async def _enter(self, user_room: str, room: str) -> None:
        """Puts every socket of one user on this pod into ``room``."""
        for sid, _ in list(self._sio.manager.get_participants("/", user_room)):
            await self._sio.enter_room(sid, room)

    async def _leave(self, user_room: str, room: str) -> None:
        for sid, _ in list(self._sio.manager.get_participants("/", user_room)):
            await self._sio.leave_room(sid, room)

    async def _emit(self, name: str, payload: dict[str, object], room: str | list[str]) -> None:
        await self._sio.emit(name, payload, room=room)
        EMITTED.labels(name).inc()


def ticket_rooms(event: cev.ConversationEvent) -> list[str]:
    """Where a ticket event goes besides the conversation's room (a socket in
    several of them still gets it once)."""
    tenant = event.tenant_id
    kind = event.WhichOneof("payload")
    if kind == "ticket_assigned":
        assignee = event.ticket_assigned.ticket.assignee_id
        return [rooms.user(tenant, assignee)] if assignee else []
    if kind == "ticket_escalated":
        return [rooms.platform()]
    if kind in ("sla_warning", "sla_breached"):
        alert = event.sla_warning if kind == "sla_warning" else event.sla_breached
        assignee = alert.ticket.assignee_id
        return [rooms.admins(tenant)] + ([rooms.user(tenant, assignee)] if assignee else [])
    if kind == "queue_updated":
        return [rooms.staff(tenant)]
    if kind == "ticket_updated" and event.ticket_updated.change == "handoff":
        # Every online agent hears why the bot handed it off, not only the room.
        return [rooms.staff(tenant)]
    return []
