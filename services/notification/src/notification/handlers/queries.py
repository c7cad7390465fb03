"""Reading the caller's own notifications."""

from __future__ import annotations

from confab_core.errors import InvalidArgument
from confab_core.identity import Caller
from confab_core.mongo import Doc
from notification.storage.db import Database

MAX_PAGE = 100
DEFAULT_PAGE = 50


class NotificationQueries:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_for_caller(self, caller: Caller, limit: int) -> list[Doc]:
        if limit < 0 or limit > MAX_PAGE:
            raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE}", "invalid_limit")
        return await self._db.notifications(caller.tenant_id).list_for_user(
            caller.user_id, limit or DEFAULT_PAGE
        )
