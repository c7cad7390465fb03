"""Auto-assignment's tenant data: the settings (one document per tenant, with the
round-robin pointer) and each agent's own capacity and last assignment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from confab_core.mongo import Doc, TenantCollection

ASSIGNMENT_SETTINGS_COLLECTION = "assignment_settings"
ASSIGNMENT_AGENTS_COLLECTION = "assignment_agents"


@dataclass(frozen=True, slots=True)
class AssignmentSettings:
    enabled: bool
    # "round_robin" or "least_busy".
    mode: str
    default_capacity: int
    # None and 0 while the tenant never changed its settings.
    updated_at: datetime | None
    version: int


@dataclass(frozen=True, slots=True)
class AgentState:
    """What auto-assignment keeps about one agent."""

    user_id: str
    # None: the tenant's default applies.
    capacity: int | None
    last_assigned_at: datetime | None


def _settings(doc: Doc) -> AssignmentSettings:
    return AssignmentSettings(
        enabled=bool(doc.get("enabled", False)),
        mode=str(doc.get("mode", "round_robin")),
        default_capacity=int(doc.get("default_capacity", 0)),
        updated_at=doc.get("updated_at"),
        version=int(doc.get("version", 0)),
    )


class AssignmentRepo:
    """One tenant's settings document and agent states."""

    def __init__(
        self,
        settings: TenantCollection,
        agents: TenantCollection,
        session: AsyncClientSession | None = None,
    ) -> None:
        self._settings = settings
        self._agents = agents
        self._session = session

    async def settings(self) -> AssignmentSettings | None:
        doc = await self._settings.find_one(
            {"_id": self._settings.tenant_id}, session=self._session
        )
        return None if doc is None or "version" not in doc else _settings(doc)

    async def replace_settings_if_version(
        self, settings: AssignmentSettings, expected_version: int
    ) -> bool:
        """Stores ``settings`` if the stored version is still ``expected_version``
        (0: none stored yet); False when another update came first."""
        fields = {
            "enabled": settings.enabled,
            "mode": settings.mode,
            "default_capacity": settings.default_capacity,
            "updated_at": settings.updated_at,
            "version": settings.version,
        }
        # A pointer moved before the first settings change leaves a document
        # without a version: version 0 matches it too.
        version_filter: Doc = (
            {"$or": [{"version": 0}, {"version": {"$exists": False}}]}
            if expected_version == 0
            else {"version": expected_version}
        )
        try:
            result = await self._settings.update_one(
                {"$and": [{"_id": self._settings.tenant_id}, version_filter]},
                {"$set": fields},
                upsert=expected_version == 0,
                session=self._session,
            )
        except DuplicateKeyError:
            return False
        return result.matched_count == 1 or result.upserted_id is not None

    async def pointer(self) -> str:
        """The agent round robin last gave a ticket to ("" before the first)."""
        doc = await self._settings.find_one(
            {"_id": self._settings.tenant_id}, projection={"pointer": 1}, session=self._session
        )
        return "" if doc is None else str(doc.get("pointer", ""))

    async def record_assignment(self, user_id: str, at: datetime, *, move_pointer: bool) -> None:
        """An agent got a ticket: their last assignment time (least busy's tie
        break), and the round-robin pointer when auto-assignment gave it."""
        await self._agents.update_one(
            {"user_id": user_id},
            {"$set": {"last_assigned_at": at}},
            upsert=True,
            session=self._session,
        )
        if move_pointer:
            await self._settings.update_one(
                {"_id": self._settings.tenant_id},
                {"$set": {"pointer": user_id}},
                upsert=True,
                session=self._session,
            )

    async def mark_dirty(self) -> None:
        """Asks whichever replica holds the assigner's lease to run this tenant
        (only while auto-assignment is on: there is nothing to run otherwise)."""
        await self._settings.update_one(
            {"_id": self._settings.tenant_id, "enabled": True},
            {"$set": {"dirty": True}},
            session=self._session,
        )

    async def clear_dirty(self) -> None:
        await self._settings.update_one(
            {"_id": self._settings.tenant_id, "dirty": True},
            {"$set": {"dirty": False}},
            session=self._session,
        )

    async def set_capacity(self, user_id: str, capacity: int | None) -> None:
        update: Doc = (
            {"$unset": {"capacity": ""}} if capacity is None else {"$set": {"capacity": capacity}}
        )
        await self._agents.update_one(
            {"user_id": user_id}, update, upsert=True, session=self._session
        )

    async def agents(self, user_ids: list[str]) -> dict[str, AgentState]:
        cursor = self._agents.find({"user_id": {"$in": user_ids}}, session=self._session)
        out: dict[str, AgentState] = {}
        async for doc in cursor:
            capacity = doc.get("capacity")
            out[str(doc["user_id"])] = AgentState(
                user_id=str(doc["user_id"]),
                capacity=None if capacity is None else int(capacity),
                last_assigned_at=doc.get("last_assigned_at"),
            )
        return out

    async def forget_agent(self, user_id: str) -> int:
        """User erasure: their capacity and last assignment go with them."""
        result = await self._agents.delete_many({"user_id": user_id}, session=self._session)
        return result.deleted_count
