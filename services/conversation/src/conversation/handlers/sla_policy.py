"""The tenant's SLA policy: who may read and replace it, its validation, and the
clock rules (targets, calendar, warning lead) the SLA model takes from it."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import date, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from confab_core.clock import Clock
from confab_core.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from confab_core.identity import ROLE_TENANT_ADMIN, Caller
from conversation.handlers import sla_clocks
from conversation.handlers.audit import AuditTrail, entry
from conversation.handlers.business_hours import MINUTES_PER_DAY, Calendar, Interval
from conversation.storage.audit import Target
from conversation.storage.db import Database, Transaction
from conversation.storage.sla import SlaPolicyRecord, SlaTargetsRecord

PRIORITIES = ("low", "medium", "high", "urgent")
BREACH_ACTIONS = ("notify", "escalate", "reassign", "raise_priority")
SLA_POLICY_UPDATED = "sla_policy.updated"
# A year of business seconds is more than any support promise.
MAX_TARGET_SECONDS = 366 * 24 * 3600
MAX_INTERVALS = 7 * 8
MAX_HOLIDAYS = 400

EMPTY_POLICY = SlaPolicyRecord(
    targets=(),
    business_hours_only=False,
    timezone="UTC",
    intervals=(),
    holidays=(),
    warning_seconds=0,
    breach_actions=(),
    updated_at=None,
    version=0,
)


@dataclass(frozen=True, slots=True)
class SlaPolicyDraft:
    """What a replacement asks for, before validation."""

    targets: tuple[SlaTargetsRecord, ...]
    business_hours_only: bool
    timezone: str
    intervals: tuple[tuple[int, int, int], ...]
    holidays: tuple[str, ...]
    warning_seconds: int
    breach_actions: tuple[str, ...]


def _invalid(code: str, message: str) -> InvalidArgument:
    return InvalidArgument(message, code)


def validate(d: SlaPolicyDraft) -> None:
    seen: set[str] = set()
    for t in d.targets:
        if t.priority not in PRIORITIES:
            raise _invalid("invalid_priority", f"targets: priority must be one of {PRIORITIES}")
        if t.priority in seen:
            raise _invalid("invalid_priority", f"targets: {t.priority} is named twice")
        seen.add(t.priority)
        for name in ("first_response", "next_response", "resolution"):
            value = getattr(t, name)
            if not 0 <= value <= MAX_TARGET_SECONDS:
                raise _invalid(
                    "invalid_target",
                    f"targets.{t.priority}.{name}: 0 (none) to {MAX_TARGET_SECONDS} seconds",
                )
    try:
        ZoneInfo(d.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise _invalid("invalid_timezone", f"timezone: unknown zone {d.timezone[:64]!r}") from None
    if len(d.intervals) > MAX_INTERVALS:
        raise _invalid("invalid_hours", f"intervals: at most {MAX_INTERVALS}")
    for weekday, start, end in d.intervals:
        if not 0 <= weekday <= 6:
            raise _invalid("invalid_hours", "intervals.weekday: 1 (Monday) to 7 (Sunday)")
        if not 0 <= start < end <= MINUTES_PER_DAY:
            raise _invalid("invalid_hours", "intervals: start must be before end, within the day")
    for day in sorted({w for w, _, _ in d.intervals}):
        spans = sorted((s, e) for w, s, e in d.intervals if w == day)
        if any(a[1] > b[0] for a, b in itertools.pairwise(spans)):
            raise _invalid("invalid_hours", "intervals: overlap on one weekday")
    if d.business_hours_only and not d.intervals:
        raise _invalid("invalid_hours", "business_hours_only needs at least one interval")
    if len(d.holidays) > MAX_HOLIDAYS:
        raise _invalid("invalid_holiday", f"holidays: at most {MAX_HOLIDAYS}")
    for holiday in d.holidays:
        try:
            date.fromisoformat(holiday)
        except ValueError:
            raise _invalid("invalid_holiday", "holidays: dates as YYYY-MM-DD") from None
    if not 0 <= d.warning_seconds <= MAX_TARGET_SECONDS:
        raise _invalid("invalid_warning", "warning_seconds: 0 (none) or a positive lead")
    if any(a not in BREACH_ACTIONS for a in d.breach_actions):
        raise _invalid("invalid_breach_action", f"breach_actions: one of {BREACH_ACTIONS}")
    if len(set(d.breach_actions)) != len(d.breach_actions):
        raise _invalid("invalid_breach_action", "breach_actions: an action is named twice")


def calendar(policy: SlaPolicyRecord) -> Calendar | None:
    if not policy.business_hours_only:
        return None
    return Calendar(
        policy.timezone,
        tuple(Interval(w, s, e) for w, s, e in policy.intervals),
        frozenset(date.fromisoformat(h) for h in policy.holidays),
    )


def rules(policy: SlaPolicyRecord) -> sla_clocks.Rules:
    targets = {t.priority: t for t in policy.targets}

    def target(priority: str, metric: str) -> int:
        found = targets.get(priority)
        return 0 if found is None else int(getattr(found, metric))

    return sla_clocks.Rules(
        target=target,
        calendar=calendar(policy),
        warning=timedelta(seconds=policy.warning_seconds),
    )


def require_admin(caller: Caller) -> None:
    if not caller.has_role(ROLE_TENANT_ADMIN):
        raise PermissionDenied("tenant admins only", "forbidden")


def _conflict() -> FailedPrecondition:
    return FailedPrecondition(
        "the SLA policy changed since it was read; read it again", "version_conflict"
    )


def _summary(p: SlaPolicyRecord) -> dict[str, str | int | bool | None]:
    """What the audit record keeps of a policy: its shape, not a copy."""
    return {
        "version": p.version,
        "priorities": ",".join(t.priority for t in p.targets),
        "business_hours_only": p.business_hours_only,
        "timezone": p.timezone,
        "warning_seconds": p.warning_seconds,
        "breach_actions": ",".join(p.breach_actions),
    }


class SlaPolicyHandler:
    def __init__(self, db: Database, clock: Clock, audit: AuditTrail) -> None:
        self._db = db
        self._clock = clock
        self._audit = audit

    async def current(self, tenant_id: str) -> SlaPolicyRecord:
        return await self._db.for_tenant(tenant_id).sla_policy.get() or EMPTY_POLICY

    async def get(self, caller: Caller) -> SlaPolicyRecord:
        require_admin(caller)
        return await self.current(caller.tenant_id)

    async def put(
        self, caller: Caller, draft: SlaPolicyDraft, expected_version: int
    ) -> SlaPolicyRecord:
        require_admin(caller)
        validate(draft)
        if expected_version < 0:
            raise _invalid("invalid_version", "expected_version: 0 or the version read")

        async def body(tx: Transaction) -> SlaPolicyRecord:
            store = tx.for_tenant(caller.tenant_id)
            before = await store.sla_policy.get() or EMPTY_POLICY
            if before.version != expected_version:
                raise _conflict()
            after = replace(
                EMPTY_POLICY,
                **{f: getattr(draft, f) for f in SlaPolicyDraft.__dataclass_fields__},
                updated_at=self._clock.now(),
                version=before.version + 1,
            )
            if not await store.sla_policy.replace_if_version(after, before.version):
                raise _conflict()
            await self._audit.append(
                store,
                entry(
                    caller,
                    SLA_POLICY_UPDATED,
                    Target("sla_policy", caller.tenant_id),
                    _summary(before),
                    _summary(after),
                ),
            )
            return after

        return await self._audit.transaction(caller.tenant_id, body)
