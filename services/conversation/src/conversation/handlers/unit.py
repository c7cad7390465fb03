"""The unit of work: the one way anything is written to a conversation.

Every write (a lone send, a thread reply, a group-commit batch, a member
change, an edit, a delete, a reaction, a read mark, a conversation change):

1. takes the writer locks of the conversations it touches (sorted, so two units
   never wait for each other in a cycle);
2. in one transaction, claims event seqs (and message seqs) on each
   conversation document, together with the conversation's own changes;
3. runs the caller's body, which writes documents through the session-bound
   stores it is given and emits the events that describe them;
4. stamps the events (id, tenant, conversation, event_seq, actor, time) and
   writes their outbox records, one insert per tenant;
5. commits, wakes the relay, and returns the body's typed value.

The lock table belongs to the unit of work, and handlers only get one by
sharing a unit of work: two handlers of one process cannot hold different
tables.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from confab.conversation.v1 import events_pb2
from confab_core.clock import Clock
from confab_core.identity import Caller
from confab_core.ids import new_id
from confab_core.kafka import (
    CONVERSATION_EVENT_TYPE,
    CONVERSATION_EVENTS_TOPIC,
    EVENT_TYPE_HEADER,
)
from confab_core.telemetry import inject_headers
from conversation.handlers import access
from conversation.handlers.locks import KeyedLocks
from conversation.handlers.rolecache import RoleMatrixCache
from conversation.handlers.sanctions import SanctionCache
from conversation.storage.conversations import Claim, Conversation
from conversation.storage.db import Database, TenantStore, Transaction
from conversation.storage.outbox import OutboxRecord

T = TypeVar("T")

# The writer-lock key of a tenant's audit chain, beside its conversations' keys
# (no conversation id starts with NUL): changes that append to the chain queue
# here instead of conflicting on its head document and retrying.
AUDIT_CHAIN = "\x00audit"


@dataclass(frozen=True)
class Change:
    """One conversation a unit writes to, and what it claims there.

    ``new``: the document of a conversation this unit creates (its claim is
    then only the creation's events, already counted in ``last_event_seq``).
    ``headers``: the trace context its events carry, when not the current one.
    """

    caller: Caller
    conversation_id: str
    claim: Claim = field(default_factory=Claim)
    new: Conversation | None = None
    # The new conversation's unique key in its tenant (see ConversationRepo.insert).
    direct_key: str = ""
    headers: list[tuple[str, bytes]] | None = None
    # Appends to the tenant's audit chain: also takes the chain's writer lock.
    audited: bool = False


@dataclass(frozen=True)
class Emitted:
    event: events_pb2.ConversationEvent
    message_id: str
    # Who did it and their trace context, when not the change's (a batch of sends).
    actor: Caller | None
    headers: list[tuple[str, bytes]] | None


@dataclass
class Taken:
    """What the body gets for one change: the conversation after the claim, a
    store bound to the transaction and the change's tenant, and where its
    events go."""

    change: Change
    conversation: Conversation
    store: TenantStore
    events: list[Emitted] = field(default_factory=list)

    @property
    def first_seq(self) -> int:
        """The first message seq this change took (its messages take the following)."""
        return self.conversation.last_seq - self.change.claim.messages + 1

    def emit(
        self,
        event: events_pb2.ConversationEvent,
        *,
        message_id: str = "",
        actor: Caller | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """``message_id``: the message whose content the event carries, if any."""
        self.events.append(Emitted(event, message_id, actor, headers))


@dataclass(frozen=True)
class Done(Generic[T]):
    value: T
    # Each change's conversation after the unit, in the order of the changes.
    conversations: list[Conversation]


class UnitOfWork:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        relay_wakeup: asyncio.Event,
        locks: KeyedLocks | None = None,
    ) -> None:
        self.database = db
        self.clock = clock
        self._relay_wakeup = relay_wakeup
        self.locks = KeyedLocks() if locks is None else locks
        # Shared like the locks: a handler that imposes a sanction drops the
        # entry every other handler of the process reads.
        self.sanctions = SanctionCache(clock)
        # Each tenant's role matrix, shared the same way; the TenantSettingsChanged
        # consumer calls ``roles.invalidate``.
        self.roles = RoleMatrixCache(db, clock)

    async def run(
        self, changes: list[Change], body: Callable[[list[Taken]], Awaitable[T]]
    ) -> Done[T]:
        keys = [(c.caller.tenant_id, c.conversation_id) for c in changes]
        keys += [(c.caller.tenant_id, AUDIT_CHAIN) for c in changes if c.audited]
        traces = inject_headers()

        async def txn(tx: Transaction) -> Done[T]:
            now = self.clock.now()
            taken = [await self._take(tx, change, now) for change in changes]
            value = await body(taken)
            records: dict[str, list[OutboxRecord]] = {}
            for t in taken:
                records.setdefault(t.change.caller.tenant_id, []).extend(
                    self._records(t, now, traces)
                )
            for tenant, batch in records.items():
                await tx.for_tenant(tenant).outbox.add_many(batch)
            return Done(value, [t.conversation for t in taken])

        async with self.locks.hold_all(keys):
            done = await self.database.transaction(txn)
        # Commit done: wake the relay instead of waiting for its next poll.
        self._relay_wakeup.set()
        return done

    async def one(
        self, change: Change, body: Callable[[Taken], Awaitable[T]]
    ) -> tuple[T, Conversation]:
        """A unit of one change: the body's value and the conversation after."""

        async def single(taken: list[Taken]) -> T:
            return await body(taken[0])

        done = await self.run([change], single)
        return done.value, done.conversations[0]

    async def _take(self, tx: Transaction, change: Change, now: datetime) -> Taken:
        store = tx.for_tenant(change.caller.tenant_id)
        if change.new is not None:
            await store.conversations.insert(change.new, change.direct_key or change.new.id)
            return Taken(change, change.new, store)
        after = await store.conversations.claim(change.conversation_id, change.claim, now)
        if after is None:
            raise access.not_found()
        return Taken(change, after, store)

    def _records(
        self, taken: Taken, now: datetime, traces: list[tuple[str, bytes]]
    ) -> list[OutboxRecord]:
        change = taken.change
        wanted = change.claim.events
        if len(taken.events) != wanted:
            raise RuntimeError(f"emitted {len(taken.events)} events, claimed {wanted}")
        first = taken.conversation.last_event_seq - wanted + 1
        default = traces if change.headers is None else change.headers
        out = []
        for offset, emitted in enumerate(taken.events):
            event = emitted.event
            event.event_id = new_id()
            event.tenant_id = change.caller.tenant_id
            event.conversation_id = change.conversation_id
            event.event_seq = first + offset
            event.actor_id = (emitted.actor or change.caller).user_id
            event.occurred_at.FromDatetime(now)
            headers = [
                (EVENT_TYPE_HEADER, CONVERSATION_EVENT_TYPE),
                *(default if emitted.headers is None else emitted.headers),
            ]
            out.append(
                OutboxRecord(
                    event_id=event.event_id,
                    topic=CONVERSATION_EVENTS_TOPIC,
                    conversation_id=change.conversation_id,
                    event_seq=event.event_seq,
                    payload=event.SerializeToString(),
                    headers=headers,
                    created_at=now,
                    message_id=emitted.message_id,
                )
            )
        return out
