"""Input checks shared by the operations."""

from __future__ import annotations

from confab_core.errors import InvalidArgument
from confab_core.limits import MAX_CUSTOM_STATUS_CHARS, MAX_ID_CHARS


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


def custom_status_text(value: str) -> str:
    """The custom status as stored: trimmed; empty means none."""
    text = value.strip()
    if len(text) > MAX_CUSTOM_STATUS_CHARS:
        raise InvalidArgument(
            f"custom_status exceeds {MAX_CUSTOM_STATUS_CHARS} characters",
            "custom_status_too_long",
        )
    if any(_control(ch) for ch in text):
        raise InvalidArgument("custom_status contains control characters", "invalid_custom_status")
    return text


def _control(ch: str) -> bool:
    return ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0
