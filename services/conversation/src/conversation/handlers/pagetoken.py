"""Page tokens for the caller's conversation list: where the last page ended.

A token names the last conversation of a page by (last activity, id), the
list's own order, so the next page starts right after it whatever was sent
meanwhile. It is bound to the tenant and user it was given to: anyone else's
token is refused, not silently applied to another list.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from confab_core.errors import InvalidArgument
from confab_core.identity import Caller
from conversation.storage.conversations import ActivityCursor

_VERSION = 1


def _invalid() -> InvalidArgument:
    return InvalidArgument("page token is not valid for this list", "invalid_cursor")


def encode(caller: Caller, cursor: ActivityCursor) -> str:
    body = {
        "v": _VERSION,
        "t": caller.tenant_id,
        "u": caller.user_id,
        "a": cursor.last_activity_at.isoformat(),
        "i": cursor.conversation_id,
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(caller: Caller, token: str) -> ActivityCursor:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
        if not isinstance(body, dict) or body.get("v") != _VERSION:
            raise _invalid()
        if body.get("t") != caller.tenant_id or body.get("u") != caller.user_id:
            raise _invalid()
        at = datetime.fromisoformat(str(body["a"]))
        conversation_id = str(body["i"])
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise _invalid() from exc
    if at.tzinfo is None or not conversation_id:
        raise _invalid()
    return ActivityCursor(at, conversation_id)
