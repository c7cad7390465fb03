"""Id checks shared by every operation."""

from __future__ import annotations

from confab_core.errors import InvalidArgument
from presence.limits import MAX_ID_CHARS


def require_id(field: str, value: str) -> str:
    """``value`` if it is a usable id, else InvalidArgument naming ``field``.

    Control characters are refused because the sweeper's index separates
    tenant and user with one.
    """
    if not value:
        raise InvalidArgument(f"{field} is required", f"missing_{field}")
    if len(value) > MAX_ID_CHARS:
        raise InvalidArgument(f"{field} exceeds {MAX_ID_CHARS} characters", f"invalid_{field}")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise InvalidArgument(f"{field} contains control characters", f"invalid_{field}")
    return value
