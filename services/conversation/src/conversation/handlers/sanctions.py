"""What mutes and bans forbid: pure functions of the sanctions and the time."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from confab_core.errors import PermissionDenied
from conversation.storage.moderation import BAN, MUTE, TENANT_WIDE, Sanction

__all__ = ["TENANT_WIDE", "banned", "refuse_banned", "refuse_sanctioned"]


def banned() -> PermissionDenied:
    return PermissionDenied("you are banned here", "banned")


def refuse_sanctioned(sanctions: Iterable[Sanction], now: datetime) -> None:
    """A ban before a mute: a banned user is told they are banned. Expired
    sanctions are read as absent, so an expiry needs nothing to run at its time."""
    active = {s.kind for s in sanctions if s.active(now)}
    if BAN in active:
        raise banned()
    if MUTE in active:
        raise PermissionDenied("you are muted here", "muted")


def refuse_banned(sanctions: Iterable[Sanction], now: datetime) -> None:
    """Joining or being added: only a ban stands in the way (a muted user may be
    added, and reads)."""
    if any(s.kind == BAN and s.active(now) for s in sanctions):
        raise banned()
