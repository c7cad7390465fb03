"""Page tokens of the ticket lists: where the last page ended, in the list's order.

Like the conversation list's tokens (pagetoken.py), a token is bound to the
tenant, the user and the list it was given for: anyone else's is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from confab_core.errors import InvalidArgument
from confab_core.identity import Caller
from conversation.storage.tickets import QueueCursor, RecentCursor

_VERSION = 1


def _invalid() -> InvalidArgument:
    return InvalidArgument("page token is not valid for this list", "invalid_cursor")


def _encode(caller: Caller, body: dict[str, object]) -> str:
    full = {"v": _VERSION, "t": caller.tenant_id, "u": caller.user_id, **body}
    raw = json.dumps(full, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(caller: Caller, token: str, scope: str) -> dict[str, object]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise _invalid() from exc
    if not isinstance(body, dict) or body.get("v") != _VERSION or body.get("s") != scope:
        raise _invalid()
    if body.get("t") != caller.tenant_id or body.get("u") != caller.user_id:
        raise _invalid()
    return body


def _time(value: object) -> datetime:
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise _invalid() from exc
    if at.tzinfo is None:
        raise _invalid()
    return at


def encode_queue(caller: Caller, filters: str, cursor: QueueCursor) -> str:
    """``filters``: a digest of the list's filters, so a token is only used with them."""
    return _encode(
        caller,
        {
            "s": "queue",
            "f": filters,
            "p": cursor.priority,
            "a": cursor.queued_at.isoformat(),
            "i": cursor.ticket_id,
        },
    )


def decode_queue(caller: Caller, filters: str, token: str) -> QueueCursor:
    body = _decode(caller, token, "queue")
    if body.get("f") != filters:
        raise _invalid()
    priority, ticket_id = body.get("p"), body.get("i")
    if not isinstance(priority, int) or not isinstance(ticket_id, str) or not ticket_id:
        raise _invalid()
    return QueueCursor(priority, _time(body.get("a")), ticket_id)


def encode_recent(caller: Caller, cursor: RecentCursor) -> str:
    return _encode(caller, {"s": "mine", "a": cursor.created_at.isoformat(), "i": cursor.ticket_id})


def decode_recent(caller: Caller, token: str) -> RecentCursor:
    body = _decode(caller, token, "mine")
    ticket_id = body.get("i")
    if not isinstance(ticket_id, str) or not ticket_id:
        raise _invalid()
    return RecentCursor(_time(body.get("a")), ticket_id)
