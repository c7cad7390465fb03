"""Auto-assignment settings, agent capacities and the agent roster: who may
read and change them, their bounds, and the audit of every change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from confab_core.clock import Clock
from confab_core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import ROLE_AGENT, ROLE_TENANT_ADMIN, Caller
from confab_core.limits import MAX_ID_CHARS
from conversation.clients.presence import OnlineAgents
from conversation.handlers.audit import AuditTrail, entry
from conversation.handlers.autoassign import MODES, ROUND_ROBIN
from conversation.storage.assignment import AgentState, AssignmentSettings
from conversation.storage.audit import Target
from conversation.storage.db import Database, TenantStore, Transaction
from conversation.storage.users import UserProfile

SETTINGS_UPDATED = "assignment.settings_updated"
CAPACITY_SET = "assignment.capacity_set"

MAX_CAPACITY = 1000
# Users whose roles make them agents to auto-assignment.
AGENT_ROLES = (ROLE_AGENT, ROLE_TENANT_ADMIN)
# The roster a tenant may have; beyond it the oldest ids are left out.
MAX_AGENTS = 2000

# Off until an admin turns it on: nobody gets tickets they did not expect.
DEFAULT_SETTINGS = AssignmentSettings(
    enabled=False, mode=ROUND_ROBIN, default_capacity=5, updated_at=None, version=0
)


class TicketLoad(Protocol):
    """What the ticket side tells auto-assignment about agents (tickets own it)."""

    async def open_counts(self, store: TenantStore, user_ids: list[str]) -> dict[str, int]: ...

    async def teams(self, store: TenantStore, user_ids: list[str]) -> dict[str, frozenset[str]]: ...


@dataclass(frozen=True, slots=True)
class SettingsPatch:
    enabled: bool | None = None
    mode: str | None = None
    default_capacity: int | None = None
    expected_version: int | None = None


@dataclass(frozen=True, slots=True)
class AgentView:
    user_id: str
    name: str
    roles: tuple[str, ...]
    online: bool
    capacity: int
    custom_capacity: bool
    open_tickets: int
    teams: frozenset[str]
    last_assigned_at: datetime | None


def _invalid(field: str, rule: str) -> InvalidArgument:
    return InvalidArgument(f"{field}: {rule}", "invalid_assignment_settings")


def validate(s: AssignmentSettings) -> None:
    if s.mode not in MODES:
        raise _invalid("mode", f"must be one of {', '.join(MODES)}")
    if not 1 <= s.default_capacity <= MAX_CAPACITY:
        raise _invalid("default_capacity", f"must be 1..{MAX_CAPACITY}")


def require_reader(caller: Caller) -> None:
    if not caller.has_role(ROLE_AGENT, ROLE_TENANT_ADMIN):
        raise PermissionDenied("agents and tenant admins only", "forbidden")


def require_admin(caller: Caller) -> None:
    if not caller.has_role(ROLE_TENANT_ADMIN):
        raise PermissionDenied("tenant admins only", "forbidden")


def is_agent(profile: UserProfile) -> bool:
    return any(r in AGENT_ROLES for r in profile.roles)


class AssignmentHandler:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        trail: AuditTrail,
        presence: OnlineAgents,
        load: TicketLoad,
        wake: Callable[[str], None],
    ) -> None:
        self._db = db
        self._clock = clock
        self._trail = trail
        self._presence = presence
        self._load = load
        # Tells the auto-assigner a tenant's rules changed (a limit raised, turned on).
        self._wake = wake

    async def current(self, tenant_id: str) -> AssignmentSettings:
        return await self._db.for_tenant(tenant_id).assignment.settings() or DEFAULT_SETTINGS

    async def settings(self, caller: Caller) -> AssignmentSettings:
        require_reader(caller)
        return await self.current(caller.tenant_id)

    async def update(self, caller: Caller, patch: SettingsPatch) -> AssignmentSettings:
        require_admin(caller)
        if patch.mode is not None and patch.mode not in MODES:
            raise _invalid("mode", f"must be one of {', '.join(MODES)}")

        async def body(tx: Transaction) -> AssignmentSettings:
            store = tx.for_tenant(caller.tenant_id)
            current = await store.assignment.settings() or DEFAULT_SETTINGS
            if patch.expected_version is not None and patch.expected_version != current.version:
                raise _conflict()
            updated = replace(
                current,
                enabled=current.enabled if patch.enabled is None else patch.enabled,
                mode=current.mode if patch.mode is None else patch.mode,
                default_capacity=(
                    current.default_capacity
                    if patch.default_capacity is None
                    else patch.default_capacity
                ),
                updated_at=self._clock.now(),
                version=current.version + 1,
            )
            validate(updated)
            if not await store.assignment.replace_settings_if_version(updated, current.version):
                raise _conflict()
            await self._trail.append(
                store,
                entry(
                    caller,
                    SETTINGS_UPDATED,
                    Target("assignment_settings", caller.tenant_id),
                    _fields(current),
                    _fields(updated),
                ),
            )
            return updated

        updated = await self._trail.transaction(caller.tenant_id, body)
        self._wake(caller.tenant_id)
        return updated

    async def agents(self, caller: Caller) -> list[AgentView]:
        require_reader(caller)
        store = self._db.for_tenant(caller.tenant_id)
        roster = await store.users.with_roles(AGENT_ROLES, MAX_AGENTS)
        return await self._views(caller.tenant_id, store, roster)

    async def set_capacity(self, caller: Caller, user_id: str, capacity: int | None) -> AgentView:
        require_admin(caller)
        if not user_id or len(user_id) > MAX_ID_CHARS:
            raise InvalidArgument("user_id: required, at most 128 characters", "invalid_user_id")
        if capacity is not None and not 0 <= capacity <= MAX_CAPACITY:
            raise InvalidArgument(f"capacity: must be 0..{MAX_CAPACITY}", "invalid_capacity")
        profile = (await self._db.for_tenant(caller.tenant_id).users.get_many([user_id])).get(
            user_id
        )
        if profile is None or not is_agent(profile):
            raise NotFound("no such agent", "agent_not_found")

        async def body(tx: Transaction) -> None:
            store = tx.for_tenant(caller.tenant_id)
            before = (await store.assignment.agents([user_id])).get(user_id)
            await store.assignment.set_capacity(user_id, capacity)
            await self._trail.append(
                store,
                entry(
                    caller,
                    CAPACITY_SET,
                    Target("agent", user_id),
                    {"capacity": None if before is None else before.capacity},
                    {"capacity": capacity},
                ),
            )

        await self._trail.transaction(caller.tenant_id, body)
        self._wake(caller.tenant_id)
        store = self._db.for_tenant(caller.tenant_id)
        return (await self._views(caller.tenant_id, store, [profile]))[0]

    async def _views(
        self, tenant_id: str, store: TenantStore, roster: list[UserProfile]
    ) -> list[AgentView]:
        ids = [p.user_id for p in roster]
        if not ids:
            return []
        settings = await store.assignment.settings() or DEFAULT_SETTINGS
        states = await store.assignment.agents(ids)
        online = await self._presence.online(tenant_id, ids)
        counts = await self._load.open_counts(store, ids)
        teams = await self._load.teams(store, ids)
        return [
            _view(p, states.get(p.user_id), settings, p.user_id in online, counts, teams)
            for p in roster
        ]


def _view(
    p: UserProfile,
    state: AgentState | None,
    settings: AssignmentSettings,
    online: bool,
    counts: dict[str, int],
    teams: dict[str, frozenset[str]],
) -> AgentView:
    own = None if state is None else state.capacity
    return AgentView(
        user_id=p.user_id,
        name=p.display_name,
        roles=p.roles,
        online=online,
        capacity=settings.default_capacity if own is None else own,
        custom_capacity=own is not None,
        open_tickets=counts.get(p.user_id, 0),
        teams=teams.get(p.user_id, frozenset()),
        last_assigned_at=None if state is None else state.last_assigned_at,
    )


def _fields(s: AssignmentSettings) -> dict[str, str | int | bool | None]:
    return {"enabled": s.enabled, "mode": s.mode, "default_capacity": s.default_capacity}


def _conflict() -> FailedPrecondition:
    return FailedPrecondition(
        "the settings changed since they were read; read them again", "version_conflict"
    )
