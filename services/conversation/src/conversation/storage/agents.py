"""The tenant's bot agents, as the conversation service reads them from the
tenant's settings document (written by the settings handler).

Only the four fields the service needs here are read, and they are plain in
the document: the agent's id, display name, role and whether it is enabled.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymongo.asynchronous.client_session import AsyncClientSession

from confab_core.mongo import TenantCollection

TENANT_SETTINGS_COLLECTION = "tenant_settings"

# An agent's role, as stored.
ASSISTANT = "assistant"
SUPPORT = "support"
PICKABLE = "pickable"


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    display_name: str
    role: str
    enabled: bool


class AgentRepo:
    def __init__(self, col: TenantCollection, session: AsyncClientSession | None = None) -> None:
        self._col = col
        self._session = session

    async def agents(self) -> tuple[Agent, ...]:
        """Every agent of the tenant, in the admin's order (none: no settings yet)."""
        doc = await self._col.find_one({}, projection={"agents": 1}, session=self._session)
        if doc is None:
            return ()
        return tuple(
            Agent(
                id=str(a.get("id", "")),
                display_name=str(a.get("display_name", "")),
                role=str(a.get("role", "")),
                enabled=bool(a.get("enabled", False)),
            )
            for a in doc.get("agents", ())
            if a.get("id")
        )
