"""Page sizes and cursors shared by the reading handlers."""

from __future__ import annotations

from confab_core.errors import InvalidArgument, NotFound
from confab_core.limits import DEFAULT_PAGE, MAX_PAGE


def page_limit(limit: int, default: int = DEFAULT_PAGE) -> int:
    if limit < 0 or limit > MAX_PAGE:
        raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE}", "invalid_limit")
    return limit or default


def message_not_found() -> NotFound:
    return NotFound("message not found", "message_not_found")
