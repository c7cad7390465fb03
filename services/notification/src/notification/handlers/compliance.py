"""Exports and hard deletes for the conversation service's compliance jobs.

Only the conversation service may ask (its jobs decided who may export or
erase what); the tenant is the one its signed token names.
"""

from __future__ import annotations

from datetime import datetime

from confab_core.errors import InvalidArgument, PermissionDenied
from confab_core.identity import Caller, current_service
from confab_core.limits import MAX_ID_CHARS
from confab_core.mongo import Doc
from confab_core.servicetoken import CONVERSATION
from notification.storage.db import Database

MAX_EXPORT_PAGE = 1000


def _require_conversation_service() -> None:
    if current_service() != CONVERSATION:
        raise PermissionDenied("only the conversation service may call this", "conversation_only")


def _user_id(user_id: str) -> str:
    if not user_id or len(user_id) > MAX_ID_CHARS:
        raise InvalidArgument("user_id is required", "invalid_user_id")
    return user_id


class NotificationCompliance:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def export_page(
        self, caller: Caller, user_id: str, after_id: str, limit: int
    ) -> list[Doc]:
        _require_conversation_service()
        if not 1 <= limit <= MAX_EXPORT_PAGE:
            raise InvalidArgument(f"limit must be 1..{MAX_EXPORT_PAGE}", "invalid_limit")
        repo = self._db.notifications(caller.tenant_id)
        return await repo.page_for_user(_user_id(user_id), after_id, limit)

    async def erase_user(self, caller: Caller, user_id: str) -> int:
        _require_conversation_service()
        return await self._db.notifications(caller.tenant_id).delete_for_user(_user_id(user_id))

    async def erase_tenant(self, caller: Caller) -> int:
        _require_conversation_service()
        return await self._db.notifications(caller.tenant_id).delete_all()

    async def purge_before(self, caller: Caller, cutoff: datetime) -> int:
        _require_conversation_service()
        return await self._db.notifications(caller.tenant_id).delete_before(cutoff)
