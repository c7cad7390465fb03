"""What every handler shares: the store, the clock, transactions, events, access."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from prometheus_client import Counter
from pymongo.asynchronous.client_session import AsyncClientSession

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2
from confab_core.clock import Clock
from confab_core.identity import ROLE_SERVICE, Caller
from confab_core.ids import new_id
from confab_core.kafka import CONVERSATION_EVENTS_TOPIC
from confab_core.mongo import Doc
from confab_core.telemetry import inject_headers
from conversation import convert
from conversation.handlers import access
from conversation.handlers.locks import KeyedLocks
from conversation.storage.db import Database, TenantStore

T = TypeVar("T")

TXN_RETRIES = Counter(
    "confab_conversation_transaction_retries_total",
    "Transactions run again after a transient error (a write conflict, most often)",
)

EVENT_TYPE_HEADER = "confab-event-type"
EVENT_TYPE = b"confab.conversation.v1.ConversationEvent"


def stamp(
    event: events_pb2.ConversationEvent,
    caller: Caller,
    conversation_id: str,
    event_seq: int,
    now: datetime,
) -> None:
    """Fills what every event carries besides its payload."""
    event.event_id = new_id()
    event.tenant_id = caller.tenant_id
    event.conversation_id = conversation_id
    event.event_seq = event_seq
    event.actor_id = caller.user_id
    event.occurred_at.FromDatetime(now)


class HandlerBase:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        relay_wakeup: asyncio.Event,
        writers: KeyedLocks | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self._relay_wakeup = relay_wakeup
        # Shared by every handler of the process: they write the same conversations.
        self._writers = writers or KeyedLocks()
        self._seen_profiles: dict[tuple[str, str], tuple[str, str]] = {}

    def store(self, caller: Caller) -> TenantStore:
        return self.db.for_tenant(caller.tenant_id)

    async def transaction(self, fn: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        attempts = 0

        async def attempt(session: AsyncClientSession) -> T:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                TXN_RETRIES.inc()
            return await fn(session)

        async with self.db.client.start_session() as session:
            result: T = await session.with_transaction(attempt)
        # Commit done: wake the relay instead of waiting for its next poll.
        self._relay_wakeup.set()
        return result

    async def remember_profile(self, caller: Caller) -> None:
        """Keeps the users collection current without a write per call."""
        if ROLE_SERVICE in caller.roles:
            return
        key = (caller.tenant_id, caller.user_id)
        value = (caller.display_name, caller.email)
        if self._seen_profiles.get(key) == value:
            return
        await self.store(caller).users.upsert(
            caller.user_id, caller.display_name, caller.email, self.clock.now()
        )
        if len(self._seen_profiles) > 50_000:
            self._seen_profiles.clear()
        self._seen_profiles[key] = value

    async def readable(self, caller: Caller, conversation_id: str) -> tuple[Doc, Doc | None]:
        """The conversation and the caller's membership, or NotFound.

        Another tenant's conversation, or one the caller may not see, is
        indistinguishable from one that does not exist.
        """
        store = self.store(caller)
        # Both at once: one round trip of waiting instead of two, on every call.
        conv, member = await asyncio.gather(
            store.conversations.get(conversation_id),
            store.members.get(conversation_id, caller.user_id),
        )
        if conv is None:
            member = None
        return access.require_visible(caller, conv, member), member

    async def counts(self, caller: Caller, conv: Doc, member: Doc | None) -> tuple[int, int]:
        """Unread and mention counts, counted from seq: exact by construction."""
        if member is None or int(member["last_read_seq"]) >= int(conv["last_seq"]):
            return 0, 0
        messages = self.store(caller).messages
        last = int(member["last_read_seq"])
        unread = await messages.count_unread(conv["_id"], caller.user_id, last)
        mentions = await messages.count_mentions(conv["_id"], caller.user_id, last)
        return unread, mentions

    async def view(self, caller: Caller, conv: Doc, member: Doc | None) -> pb.Conversation:
        unread, mentions = await self.counts(caller, conv, member)
        return convert.conversation(conv, member, unread=unread, mentions=mentions)

    async def emit(
        self,
        store: TenantStore,
        session: AsyncClientSession,
        caller: Caller,
        conv_after_inc: Doc,
        *events: events_pb2.ConversationEvent,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Writes events that took the last ``len(events)`` event seqs of the conversation.

        ``headers``: the trace context to carry, when not the current one.
        """
        trace_headers = inject_headers() if headers is None else headers
        now = self.clock.now()
        first = int(conv_after_inc["last_event_seq"]) - len(events) + 1
        for offset, event in enumerate(events):
            stamp(event, caller, conv_after_inc["_id"], first + offset, now)
            await store.outbox.add(
                event_id=event.event_id,
                topic=CONVERSATION_EVENTS_TOPIC,
                conversation_id=event.conversation_id,
                event_seq=event.event_seq,
                payload=event.SerializeToString(),
                headers=[(EVENT_TYPE_HEADER, EVENT_TYPE), *trace_headers],
                now=now,
                session=session,
            )

    async def write_events(
        self,
        caller: Caller,
        conversation_id: str,
        build: Callable[[AsyncClientSession, Doc], Awaitable[list[events_pb2.ConversationEvent]]],
        *,
        events: int = 1,
        message: bool = False,
        set_fields: dict[str, Any] | None = None,
        inc_fields: dict[str, int] | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Doc:
        """One transaction: take seqs on the conversation, let ``build`` write, emit its events.

        ``build`` gets the session and the conversation after the increment and
        returns exactly ``events`` events; returns that conversation.
        """
        store = self.store(caller)

        async def txn(session: AsyncClientSession) -> Doc:
            after = await store.conversations.next_seq(
                conversation_id,
                self.clock.now(),
                message=message,
                session=session,
                events=events,
                set_fields=set_fields,
                inc_fields=inc_fields,
            )
            if after is None:
                raise access.not_found()
            built = await build(session, after)
            if len(built) != events:
                raise RuntimeError(f"built {len(built)} events, took {events} seqs")
            await self.emit(store, session, caller, after, *built, headers=headers)
            return after

        async with self._writers.hold((caller.tenant_id, conversation_id)):
            return await self.transaction(txn)
