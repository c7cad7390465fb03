"""The support desk's setup: categories and teams. Changes are tenant admins'
and each is audited in the transaction that makes it. The categories are a
section of the tenant's chat settings (handlers/tenant_settings.py), their one
source: this API reads and writes that section."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from confab_core.clock import Clock
from confab_core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import Caller
from confab_core.ids import new_id
from confab_core.limits import (
    MAX_ID_CHARS,
    MAX_TITLE_CHARS,
    MAX_USER_IDS,
)
from conversation.handlers import access
from conversation.handlers.audit import AuditTrail, entry
from conversation.handlers.tenant_settings import TICKET_CATEGORIES, SettingsHandler
from conversation.storage.audit import Target
from conversation.storage.db import Database, Transaction
from conversation.storage.settings import SettingsRecord
from conversation.storage.tickets import Team

# How often a categories write starts over when a settings write came first.
_ATTEMPTS = 4


def team_not_found() -> NotFound:
    return NotFound("team not found", "team_not_found")


def _require_admin(caller: Caller) -> None:
    if not access.tenant_admin(caller):
        raise PermissionDenied("tenant admins set up the support desk", "forbidden")


def _require_staff(caller: Caller) -> None:
    if not access.staff(caller):
        raise PermissionDenied("agents and admins see the support desk's setup", "forbidden")


def _team_fields(name: str, agent_ids: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    name = name.strip()
    if not name or len(name) > MAX_TITLE_CHARS:
        raise InvalidArgument(f"a team name is 1-{MAX_TITLE_CHARS} characters", "invalid_name")
    agents = tuple(dict.fromkeys(a for a in agent_ids))
    if any(not a or len(a) > MAX_ID_CHARS for a in agents):
        raise InvalidArgument("agent ids are 1-128 characters", "invalid_member_id")
    if len(agents) > MAX_USER_IDS:
        raise InvalidArgument("too many agents", "too_many_members")
    return name, agents


class SupportAdminHandler:
    def __init__(
        self, db: Database, clock: Clock, audit: AuditTrail, settings: SettingsHandler
    ) -> None:
        self._db = db
        self._clock = clock
        self._audit = audit
        self._settings = settings

    async def categories(self, caller: Caller) -> tuple[str, ...]:
        _require_staff(caller)
        return (await self._db.for_tenant(caller.tenant_id).support.settings()).categories

    async def put_categories(self, caller: Caller, values: Sequence[str]) -> tuple[str, ...]:
        """The ticket_categories section of the tenant's chat settings, under this
        older API without versions: the last writer wins, as it always did."""
        _require_admin(caller)
        draft = SettingsRecord(ticket_categories=tuple(values))

        async def put() -> tuple[str, ...]:
            version = (await self._settings.current(caller.tenant_id)).version
            view = await self._settings.update(caller, draft, [TICKET_CATEGORIES], version)
            return view.settings.ticket_categories

        for _ in range(_ATTEMPTS - 1):
            try:
                return await put()
            except FailedPrecondition:
                continue
        return await put()

    async def teams(self, caller: Caller) -> list[Team]:
        _require_staff(caller)
        return await self._db.for_tenant(caller.tenant_id).support.teams()

    async def create_team(self, caller: Caller, name: str, agent_ids: Sequence[str]) -> Team:
        _require_admin(caller)
        name, agents = _team_fields(name, agent_ids)
        now = self._clock.now()
        team = Team(new_id(), name, agents, now, now)

        async def body(tx: Transaction) -> None:
            store = tx.for_tenant(caller.tenant_id)
            await store.support.insert_team(team)
            await self._audit.append(
                store,
                entry(
                    caller,
                    "support.team.create",
                    Target("team", team.id),
                    {},
                    {"agent_ids": ",".join(agents)},
                ),
            )

        await self._audit.transaction(caller.tenant_id, body)
        return team

    async def update_team(
        self, caller: Caller, team_id: str, name: str, agent_ids: Sequence[str]
    ) -> Team:
        _require_admin(caller)
        if not team_id or len(team_id) > MAX_ID_CHARS:
            raise team_not_found()
        name, agents = _team_fields(name, agent_ids)

        async def body(tx: Transaction) -> Team:
            store = tx.for_tenant(caller.tenant_id)
            before = await store.support.team(team_id)
            if before is None:
                raise team_not_found()
            after = replace(before, name=name, agent_ids=agents, updated_at=self._clock.now())
            await store.support.update_team(after)
            await self._audit.append(
                store,
                entry(
                    caller,
                    "support.team.update",
                    Target("team", team_id),
                    {"agent_ids": ",".join(before.agent_ids)},
                    {"agent_ids": ",".join(agents)},
                ),
            )
            return after

        return await self._audit.transaction(caller.tenant_id, body)

    async def delete_team(self, caller: Caller, team_id: str) -> None:
        _require_admin(caller)
        if not team_id or len(team_id) > MAX_ID_CHARS:
            raise team_not_found()

        async def body(tx: Transaction) -> None:
            store = tx.for_tenant(caller.tenant_id)
            before = await store.support.team(team_id)
            if before is None or not await store.support.delete_team(team_id):
                raise team_not_found()
            await self._audit.append(
                store,
                entry(
                    caller,
                    "support.team.delete",
                    Target("team", team_id),
                    {"agent_ids": ",".join(before.agent_ids)},
                    {},
                ),
            )

        await self._audit.transaction(caller.tenant_id, body)
