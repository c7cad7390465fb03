"""Applies each tenant's retention policy: hard deletes, in batches, under a lease.

One replica at a time runs a pass (a lease in MongoDB, renewed between
batches), every ``period``. A pass walks the tenants that have conversations
and, for each, the conversations: messages older than the tenant's
``message_days`` go with their search entries, the events that carry them and
the conversation's older events, and the bot's memory and summaries of a
conversation that lost messages; archived conversations inactive for
``archived_days``, and any conversation inactive for ``inactive_days``, go
whole; files go with their messages and conversations, unattached files once
older than ``message_days``, and direct uploads abandoned in UPLOADING for an
hour on every pass (jobs/files.py removes their bytes, then records); audit
records older than ``audit_days`` go through governance's purge, which
re-anchors the hash chain. Between two batches the scheduler pauses, so a
large purge never holds the database for long.

Unread counts stay exact without touching any counter: they are counted from
the messages above each member's read marker, so a message that is gone is no
longer unread, and seqs are never reused (the conversation keeps its
``last_seq``), so a read marker never points past a new message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from prometheus_client import Counter
from pymongo.errors import PyMongoError

from confab_core.clock import Clock
from confab_core.errors import ConfabError
from confab_core.ids import new_id
from conversation.jobs.files import FileReaper
from conversation.jobs.policy import CompliancePolicies
from conversation.jobs.runner import no_pause
from conversation.storage.db import Database, TenantStore
from conversation.storage.files import FileRecord

log = logging.getLogger(__name__)

LEASE_ID = "retention"
# A presigned upload URL lives minutes; an hour later nobody is coming back.
STALE_UPLOADING = timedelta(hours=1)
DELETED = Counter(
    "confab_conversation_retention_deleted_total",
    "Documents deleted by retention",
    ["what"],
)


class PeerRetention(Protocol):
    """Another service's part of retention (notifications, audit records)."""

    async def purge_before(self, tenant_id: str, cutoff: datetime) -> int: ...


class AuditPurge(Protocol):
    """Governance's purge intent: a prefix of the tenant's audit chain, re-anchored."""

    async def purge_older_than(self, tenant_id: str, cutoff: datetime) -> int: ...


class LeaseLost(Exception):
    """Another replica holds the retention lease now: this pass stops."""


@dataclass
class Report:
    messages: int = 0
    events: int = 0
    conversations: int = 0
    files: int = 0
    peers: int = 0
    audit: int = 0
    tenants: list[str] = field(default_factory=list)


class RetentionScheduler:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        policies: CompliancePolicies,
        *,
        files: FileReaper,
        batch_size: int,
        period_seconds: float,
        lease_seconds: float,
        peers: Sequence[PeerRetention] = (),
        audit: AuditPurge | None = None,
        pause: Callable[[], Awaitable[None]] = no_pause,
    ) -> None:
        self._db = db
        self._leases = db.leases()
        self._clock = clock
        self._policies = policies
        self._files = files
        self._batch = batch_size
        self._period = period_seconds
        self._lease = lease_seconds
        self._peers = peers
        self._audit = audit
        self._pause = pause
        self._owner = new_id()
        self._renew_at = float("-inf")

    async def run(self) -> None:
        while True:
            try:
                await self.run_pass()
            except (PyMongoError, OSError, LeaseLost, ConfabError) as exc:
                # The next pass starts over; what this one deleted stays deleted.
                log.warning("retention pass stopped: %s", exc)
            await asyncio.sleep(self._period)

    async def run_pass(self) -> Report | None:
        """One pass over every tenant; None when another replica holds the lease."""
        self._renew_at = float("-inf")
        if not await self._hold():
            return None
        report = Report()
        after = ""
        while tenants := await self._db.tenant_ids(after, 100):
            for tenant in tenants:
                await self.apply(tenant, report)
            after = tenants[-1]
        return report

    async def apply(self, tenant_id: str, report: Report) -> None:
        store = self._db.for_tenant(tenant_id)
        now = self._clock.now()
        await self._purge_abandoned(tenant_id, now - STALE_UPLOADING, report)
        rule = await self._policies.retention(tenant_id)
        if rule.empty:
            return
        report.tenants.append(tenant_id)
        after = ""
        while convs := await store.conversations.page_by_id(after, self._batch):
            for conv in convs:
                if rule.message_days:
                    await self._purge_old(
                        tenant_id, store, conv.id, now - timedelta(days=rule.message_days), report
                    )
            after = convs[-1].id
        if rule.message_days:
            await self._purge_unattached(tenant_id, now - timedelta(days=rule.message_days), report)
        if rule.archived_days:
            before = now - timedelta(days=rule.archived_days)
            await self._purge_stale(tenant_id, store, before, report, archived=True)
        if rule.inactive_days:
            before = now - timedelta(days=rule.inactive_days)
            await self._purge_stale(tenant_id, store, before, report, archived=False)
        if rule.message_days:
            cutoff = now - timedelta(days=rule.message_days)
            for peer in self._peers:
                try:
                    report.peers += await peer.purge_before(tenant_id, cutoff)
                except ConfabError as exc:
                    # The next pass tries again; this tenant's own data is done.
                    log.warning("retention of %s in a peer failed: %s", tenant_id, exc.message)
        if rule.audit_days and self._audit is not None:
            cutoff = now - timedelta(days=rule.audit_days)
            report.audit += await self._audit.purge_older_than(tenant_id, cutoff)

    async def _purge_old(
        self,
        tenant_id: str,
        store: TenantStore,
        conversation_id: str,
        cutoff: datetime,
        report: Report,
    ) -> None:
        purged = False
        while ids := await store.messages.older_than(conversation_id, cutoff, self._batch):
            attached = await store.files.of_messages(ids)
            await self._remove_files(tenant_id, [f for fs in attached.values() for f in fs], report)
            report.events += await store.outbox.purge_messages(conversation_id, ids)
            report.messages += await store.messages.purge(ids)
            DELETED.labels("messages").inc(len(ids))
            purged = True
            await self._between_batches()
        if purged:
            # The bot's memory and summaries retell what just went; it rebuilds
            # them from the messages that remain.
            await store.bot_memory.forget_conversations([conversation_id])
        report.events += await store.outbox.purge_before(conversation_id, cutoff)

    async def _purge_stale(
        self,
        tenant_id: str,
        store: TenantStore,
        before: datetime,
        report: Report,
        *,
        archived: bool,
    ) -> None:
        while stale := await store.conversations.page_stale(
            "", self._batch, before, archived=archived
        ):
            for conversation_id in stale:
                while ids := await store.messages.ids_in(conversation_id, self._batch):
                    report.messages += await store.messages.purge(ids)
                    await self._between_batches()
                report.events += await store.outbox.purge_conversation(conversation_id)
                await store.members.purge_conversation(conversation_id)
                # A ticket goes with its conversation.
                await store.tickets.purge_conversation(conversation_id)
                await store.sla.purge_conversation(conversation_id)
                await store.escalations.purge_conversation(conversation_id)
                await store.bot_memory.forget_conversations([conversation_id])
                removed = await self._files.remove_conversation(
                    tenant_id, conversation_id, self._batch
                )
                report.files += removed
                DELETED.labels("files").inc(removed)
                report.conversations += await store.conversations.purge(conversation_id)
                DELETED.labels("conversations").inc()

    async def _purge_abandoned(self, tenant_id: str, before: datetime, report: Report) -> None:
        files = self._db.for_tenant(tenant_id).files
        while stale := await files.stale_uploading(before, self._batch):
            await self._remove_files(tenant_id, stale, report)
            await self._between_batches()

    async def _purge_unattached(self, tenant_id: str, before: datetime, report: Report) -> None:
        files = self._db.for_tenant(tenant_id).files
        while old := await files.unattached_before(before, self._batch):
            await self._remove_files(tenant_id, old, report)
            await self._between_batches()

    async def _remove_files(self, tenant_id: str, files: list[FileRecord], report: Report) -> None:
        removed = await self._files.remove(tenant_id, files)
        report.files += removed
        DELETED.labels("files").inc(removed)

    async def _between_batches(self) -> None:
        await self._pause()
        if not await self._hold():
            raise LeaseLost(LEASE_ID)

    async def _hold(self) -> bool:
        if self._clock.monotonic() < self._renew_at:
            return True
        held = await self._leases.take(
            LEASE_ID, self._owner, self._clock.now(), timedelta(seconds=self._lease)
        )
        self._renew_at = self._clock.monotonic() + self._lease / 3 if held else float("-inf")
        return held
