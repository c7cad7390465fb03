"""Erasure for the conversation service's compliance jobs: only it may ask, for
the tenant its signed token names."""

from __future__ import annotations

from confab_core.errors import InvalidArgument, PermissionDenied
from confab_core.identity import Caller, current_service
from confab_core.limits import MAX_ID_CHARS
from confab_core.servicetoken import CONVERSATION
from presence.storage.presence import PresenceDb


def _require_conversation_service() -> None:
    if current_service() != CONVERSATION:
        raise PermissionDenied("only the conversation service may call this", "conversation_only")


class PresenceCompliance:
    def __init__(self, db: PresenceDb) -> None:
        self._db = db

    async def erase_user(self, caller: Caller, user_id: str) -> int:
        _require_conversation_service()
        if not user_id or len(user_id) > MAX_ID_CHARS:
            raise InvalidArgument("user_id is required", "invalid_user_id")
        return await self._db.for_tenant(caller.tenant_id).erase(user_id)

    async def erase_tenant(self, caller: Caller) -> int:
        _require_conversation_service()
        return await self._db.for_tenant(caller.tenant_id).erase_all()
