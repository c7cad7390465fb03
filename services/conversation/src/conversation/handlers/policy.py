"""The tenant compliance policy: who may read and change it, its bounds, and the
cached read every message write consults."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from confab_core import pii
from confab_core.clock import Clock
from confab_core.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from confab_core.identity import ROLE_SERVICE, ROLE_TENANT_ADMIN, Caller
from conversation.storage.db import Database
from conversation.storage.policies import PolicyRecord

PII_MODES = ("off", "flag", "mask", "block")
ERASURE_MODES = ("delete", "anonymise")
MAX_RETENTION_DAYS = 3650
MIN_AUDIT_RETENTION_DAYS = 365
# How stale a replica's view of a policy may be: a change takes effect on every
# replica within this many seconds (at once on the replica that made it).
POLICY_CACHE_SECONDS = 5.0
_CACHE_MAX_TENANTS = 10_000

# "flag" by default: a new tenant sees what its users share (marks, counts, the
# moderation queue) without Confab rewriting or refusing anyone's words before
# an admin chose to.
DEFAULT_POLICY = PolicyRecord(
    pii_mode="flag",
    pii_kinds=(),
    mask_bot_prompts=False,
    retention_message_days=0,
    retention_archived_days=0,
    retention_inactive_days=0,
    audit_retention_days=0,
    erasure_mode="delete",
    updated_at=None,
    version=0,
)


@dataclass(frozen=True, slots=True)
class PolicyPatch:
    """The fields an update sets; None keeps the stored value."""

    pii_mode: str | None = None
    pii_kinds: tuple[str, ...] | None = None
    mask_bot_prompts: bool | None = None
    retention_message_days: int | None = None
    retention_archived_days: int | None = None
    retention_inactive_days: int | None = None
    audit_retention_days: int | None = None
    erasure_mode: str | None = None
    expected_version: int | None = None


def _invalid(field: str, rule: str) -> InvalidArgument:
    return InvalidArgument(f"{field}: {rule}", "invalid_policy")


def _check_days(field: str, days: int, minimum: int = 1) -> None:
    if days != 0 and not minimum <= days <= MAX_RETENTION_DAYS:
        raise _invalid(field, f"must be 0 (forever) or {minimum}..{MAX_RETENTION_DAYS} days")


def validate(p: PolicyRecord) -> None:
    if p.pii_mode not in PII_MODES:
        raise _invalid("pii_mode", f"must be one of {', '.join(PII_MODES)}")
    unknown = sorted(set(p.pii_kinds) - set(pii.KINDS))
    if unknown:
        raise _invalid("pii_kinds", f"unknown kind {unknown[0]!r}; known: {', '.join(pii.KINDS)}")
    if len(set(p.pii_kinds)) != len(p.pii_kinds):
        raise _invalid("pii_kinds", "names a kind twice")
    _check_days("retention_message_days", p.retention_message_days)
    _check_days("retention_archived_days", p.retention_archived_days)
    _check_days("retention_inactive_days", p.retention_inactive_days)
    _check_days("audit_retention_days", p.audit_retention_days, MIN_AUDIT_RETENTION_DAYS)
    if p.erasure_mode not in ERASURE_MODES:
        raise _invalid("erasure_mode", f"must be one of {', '.join(ERASURE_MODES)}")


def _apply(current: PolicyRecord, patch: PolicyPatch) -> PolicyRecord:
    changes = {
        name: getattr(patch, name)
        for name in (
            "pii_mode",
            "pii_kinds",
            "mask_bot_prompts",
            "retention_message_days",
            "retention_archived_days",
            "retention_inactive_days",
            "audit_retention_days",
            "erasure_mode",
        )
        if getattr(patch, name) is not None
    }
    return replace(current, **changes)


def _require_reader(caller: Caller) -> None:
    if not caller.has_role(ROLE_TENANT_ADMIN, ROLE_SERVICE):
        raise PermissionDenied("tenant admins only", "forbidden")


def _require_admin(caller: Caller) -> None:
    if not caller.has_role(ROLE_TENANT_ADMIN):
        raise PermissionDenied("tenant admins only", "forbidden")


class PolicyHandler:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._cache: dict[str, tuple[float, PolicyRecord]] = {}
        self._reading: dict[str, asyncio.Future[PolicyRecord]] = {}

    async def current(self, tenant_id: str) -> PolicyRecord:
        """The tenant's policy, at most POLICY_CACHE_SECONDS old: read on every
        message write, so it must not cost a round trip each time."""
        now = self._clock.monotonic()
        hit = self._cache.get(tenant_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        # One read per tenant at a time: when the cached copy expires under a burst
        # of sends, they all wait for the same read instead of each making one.
        pending = self._reading.get(tenant_id)
        if pending is None:
            pending = asyncio.ensure_future(self._read(tenant_id))
            self._reading[tenant_id] = pending
            pending.add_done_callback(lambda _: self._reading.pop(tenant_id, None))
        return await asyncio.shield(pending)

    async def _read(self, tenant_id: str) -> PolicyRecord:
        started = self._clock.monotonic()
        policy = await self._db.policies(tenant_id).get() or DEFAULT_POLICY
        if len(self._cache) >= _CACHE_MAX_TENANTS:
            self._cache.clear()
        self._cache[tenant_id] = (started + POLICY_CACHE_SECONDS, policy)
        return policy

    async def get(self, caller: Caller) -> PolicyRecord:
        _require_reader(caller)
        return await self._db.policies(caller.tenant_id).get() or DEFAULT_POLICY

    async def pii_counts(self, caller: Caller) -> dict[str, int]:
        _require_reader(caller)
        return await self._db.pii_counts(caller.tenant_id).counts()

    async def update(self, caller: Caller, patch: PolicyPatch) -> PolicyRecord:
        _require_admin(caller)
        repo = self._db.policies(caller.tenant_id)
        current = await repo.get() or DEFAULT_POLICY
        if patch.expected_version is not None and patch.expected_version != current.version:
            raise _conflict()
        updated = replace(
            _apply(current, patch), updated_at=self._clock.now(), version=current.version + 1
        )
        validate(updated)
        if not await repo.replace_if_version(updated, current.version):
            raise _conflict()
        self._cache[caller.tenant_id] = (self._clock.monotonic() + POLICY_CACHE_SECONDS, updated)
        return updated


def _conflict() -> FailedPrecondition:
    return FailedPrecondition(
        "the policy changed since it was read; read it again", "version_conflict"
    )
