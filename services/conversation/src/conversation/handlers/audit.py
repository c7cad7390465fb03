"""The audit trail as handlers use it: who did what to what, from where.

Inside a unit of work, ``in_unit`` appends to the tenant's chain in the same
transaction as the change it records; an action outside one (an export request,
a policy change, a moderation decision with no conversation write) uses
``record``, which runs its own transaction. Either way the request id and
client address come from the request context the gateway started.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from confab_core.clock import Clock
from confab_core.errors import InvalidArgument, PermissionDenied
from confab_core.identity import Caller
from confab_core.limits import MAX_ID_CHARS, MAX_PAGE
from confab_core.requestinfo import current_request
from conversation.handlers import access
from conversation.handlers.locks import KeyedLocks
from conversation.handlers.unit import AUDIT_CHAIN, Taken
from conversation.storage.audit import (
    AuditEntry,
    AuditQuery,
    AuditRecord,
    Fields,
    Target,
    Verification,
)
from conversation.storage.db import Database, TenantStore, Transaction

# Stable action names: clients and auditors filter on them.
MEMBER_ADDED = "member.added"
MEMBER_REMOVED = "member.removed"
MEMBER_ROLE_CHANGED = "member.role_changed"
CONVERSATION_UPDATED = "conversation.updated"
CONVERSATION_ARCHIVED = "conversation.archived"
CONVERSATION_DELETED = "conversation.deleted"
MESSAGE_DELETED_BY_OTHER = "message.deleted_by_other"
USER_MUTED = "user.muted"
USER_UNMUTED = "user.unmuted"
USER_BANNED = "user.banned"
USER_UNBANNED = "user.unbanned"
MESSAGE_REPORTED = "message.reported"
REPORT_RESOLVED = "moderation.resolved"
# Call sites of colleagues' features (jobs, pii) use these names.
POLICY_UPDATED = "policy.updated"
EXPORT_REQUESTED = "export.requested"
ERASURE_REQUESTED = "erasure.requested"

MAX_ACTION_CHARS = 64

T = TypeVar("T")


def entry(
    caller: Caller,
    action: str,
    target: Target,
    before: Fields | None = None,
    after: Fields | None = None,
    *,
    conversation_id: str = "",
) -> AuditEntry:
    request = current_request()
    return AuditEntry(
        actor_id=caller.user_id,
        action=action,
        target=target,
        before=before or {},
        after=after or {},
        conversation_id=conversation_id,
        request_id=request.request_id,
        client_ip=request.client_ip,
    )


class AuditTrail:
    def __init__(self, db: Database, clock: Clock, locks: KeyedLocks | None = None) -> None:
        """``locks``: the unit of work's table, so appends outside a unit queue
        behind those inside one (and the other way round)."""
        self._db = db
        self._clock = clock
        self._locks = KeyedLocks() if locks is None else locks

    async def in_unit(
        self,
        t: Taken,
        action: str,
        target: Target,
        before: Fields | None = None,
        after: Fields | None = None,
    ) -> AuditRecord:
        """Appends inside a unit of work's transaction, for its change's caller
        and conversation; the change must be ``Change(audited=True)``."""
        _require_audited(t)
        return await self.append(
            t.store,
            entry(
                t.change.caller,
                action,
                target,
                before,
                after,
                conversation_id=t.change.conversation_id,
            ),
        )

    async def in_unit_all(
        self, t: Taken, items: list[tuple[str, Target, Fields, Fields]]
    ) -> list[AuditRecord]:
        """Several (action, target, before, after) at once: one claim of the chain."""
        _require_audited(t)
        caller, conv_id = t.change.caller, t.change.conversation_id
        entries = [entry(caller, a, tg, b, af, conversation_id=conv_id) for a, tg, b, af in items]
        return await t.store.audit.append_many(entries, self._clock.now())

    async def append(self, store: TenantStore, audited: AuditEntry) -> AuditRecord:
        """Appends through a store bound to a transaction (``Taken.store``,
        ``Transaction.for_tenant``)."""
        return await store.audit.append(audited, self._clock.now())

    async def record(
        self,
        caller: Caller,
        action: str,
        target: Target,
        before: Fields | None = None,
        after: Fields | None = None,
        *,
        conversation_id: str = "",
    ) -> AuditRecord:
        """Appends in a transaction of its own, for an action outside a unit of work."""
        audited = entry(caller, action, target, before, after, conversation_id=conversation_id)

        async def body(tx: Transaction) -> AuditRecord:
            return await self.append(tx.for_tenant(caller.tenant_id), audited)

        return await self.transaction(caller.tenant_id, body)

    async def transaction(self, tenant_id: str, body: Callable[[Transaction], Awaitable[T]]) -> T:
        """A transaction that appends to ``tenant_id``'s chain (through
        ``append``), holding the chain's writer lock for its whole length."""
        async with self._locks.hold((tenant_id, AUDIT_CHAIN)):
            return await self._db.transaction(body)

    async def query(
        self,
        caller: Caller,
        *,
        actor_id: str = "",
        action: str = "",
        target_kind: str = "",
        target_id: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
        before_seq: int = 0,
        limit: int = 0,
    ) -> list[AuditRecord]:
        """The caller's tenant's records, newest first; tenant admins only."""
        require_auditor(caller)
        for name, value in (("actor", actor_id), ("target_id", target_id)):
            if len(value) > MAX_ID_CHARS:
                raise InvalidArgument(f"{name} too long", "invalid_filter")
        if len(action) > MAX_ACTION_CHARS or len(target_kind) > MAX_ACTION_CHARS:
            raise InvalidArgument("action or target kind too long", "invalid_filter")
        if since is not None and until is not None and since >= until:
            raise InvalidArgument("from must be before to", "invalid_time_range")
        if before_seq < 0:
            raise InvalidArgument("bad cursor", "invalid_cursor")
        limit = MAX_PAGE if limit <= 0 else min(limit, MAX_PAGE)
        return await self._db.for_tenant(caller.tenant_id).audit.query(
            AuditQuery(
                actor_id=actor_id,
                action=action,
                target_kind=target_kind,
                target_id=target_id,
                since=since,
                until=until,
                before_seq=before_seq,
                limit=limit,
            )
        )

    async def verify(self, caller: Caller) -> Verification:
        require_auditor(caller)
        return await self.verify_tenant(caller.tenant_id)

    async def verify_tenant(self, tenant_id: str) -> Verification:
        """For the operator's command; no caller, so no access check."""
        return await self._db.for_tenant(tenant_id).audit.verify()

    async def purge_older_than(self, tenant_id: str, cutoff: datetime) -> int:
        """For retention (the jobs scheduler): deletes a prefix of the chain and
        anchors it, so verify keeps passing."""
        return await self._db.for_tenant(tenant_id).audit.purge_older_than(cutoff)


def _require_audited(t: Taken) -> None:
    if not t.change.audited:
        raise RuntimeError("a change that appends to the audit log must be Change(audited=True)")


def require_auditor(caller: Caller) -> None:
    if not access.tenant_admin(caller):
        raise PermissionDenied("tenant admins only", "forbidden")
