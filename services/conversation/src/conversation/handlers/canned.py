"""Canned replies and the tenant's support profile: who may do what, rendering
with the conversation's values, and sending through the ordinary send path."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from confab.conversation.v1 import conversation_pb2 as cpb
from confab_core.errors import (
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from confab_core.identity import Caller
from confab_core.ids import new_id
from confab_core.limits import MAX_QUERY_CHARS, MAX_SEARCH_TERMS
from conversation.handlers import access, cannedtext
from conversation.handlers import text as textutil
from conversation.handlers.audit import entry
from conversation.handlers.base import HandlerBase
from conversation.handlers.paging import page_limit
from conversation.handlers.policy import PolicyHandler
from conversation.handlers.sending import Sending, Sent
from conversation.handlers.unit import UnitOfWork
from conversation.storage.audit import Fields, Target
from conversation.storage.canned import (
    SHARED_OWNER,
    CannedKey,
    CannedReply,
    ShortcodeTaken,
    SupportProfile,
)
from conversation.storage.db import TenantStore, Transaction

# Stable audit action names.
CANNED_CREATED = "canned_reply.created"
CANNED_UPDATED = "canned_reply.updated"
CANNED_DELETED = "canned_reply.deleted"
PROFILE_UPDATED = "support_profile.updated"

# Search ranks every visible reply of the caller in memory, so both are bounded.
MAX_SHARED = 1000
MAX_PERSONAL = 200
MAX_PROFILE_NAME = 100
_TOKEN_VERSION = 1

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CannedPage:
    replies: list[CannedReply]
    next_page_token: str


def _not_found() -> NotFound:
    return NotFound("canned reply not found", "canned_reply_not_found")


def _taken(shortcode: str) -> Conflict:
    return Conflict(f"shortcode {shortcode!r} is taken", "shortcode_taken")


def require_staff(caller: Caller) -> None:
    if not access.staff(caller):
        raise PermissionDenied("agents and admins only", "forbidden")


def _visible(caller: Caller, reply: CannedReply | None) -> CannedReply:
    """A personal reply is its owner's alone: anyone else, admins included, gets
    the same answer as for a reply that does not exist."""
    if reply is None or reply.owner_id not in (SHARED_OWNER, caller.user_id):
        raise _not_found()
    return reply


def _require_editor(caller: Caller, reply: CannedReply) -> None:
    if reply.scope == cannedtext.SHARED and not access.tenant_admin(caller):
        raise PermissionDenied("only tenant admins change shared replies", "forbidden")


def _fields(reply: CannedReply) -> Fields:
    return {"scope": reply.scope, "shortcode": reply.shortcode, "body": reply.body}


def _sort_key(query: str, key: CannedKey) -> list[object]:
    m = cannedtext.match(query, _candidate(key))
    return [
        int(m) if m is not None else 99,
        key.scope != cannedtext.PERSONAL,
        key.shortcode,
        key.id,
    ]


def _candidate(key: CannedKey) -> cannedtext.Candidate:
    return cannedtext.Candidate(key.id, key.scope, key.shortcode, key.body_match)


def _invalid_token() -> InvalidArgument:
    return InvalidArgument("page token is not valid for this list", "invalid_cursor")


def _encode(caller: Caller, query: str, last: list[object]) -> str:
    body = {"v": _TOKEN_VERSION, "t": caller.tenant_id, "u": caller.user_id, "q": query, "k": last}
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(caller: Caller, query: str, token: str) -> list[object]:
    """The sort key of the last reply of the previous page; bound to the caller
    and the query it was given for."""
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise _invalid_token() from exc
    if (
        not isinstance(body, dict)
        or body.get("v") != _TOKEN_VERSION
        or (body.get("t"), body.get("u"), body.get("q"))
        != (caller.tenant_id, caller.user_id, query)
    ):
        raise _invalid_token()
    last = body.get("k")
    if (
        not isinstance(last, list)
        or len(last) != 4
        or not isinstance(last[0], int)
        or not isinstance(last[1], bool)
        or not all(isinstance(x, str) for x in last[2:])
    ):
        raise _invalid_token()
    return last


class CannedHandler(HandlerBase):
    def __init__(
        self, unit: UnitOfWork, sending: Sending, policies: PolicyHandler | None = None
    ) -> None:
        super().__init__(unit, policies)
        # The process's one send path: a canned reply is an ordinary message.
        self._sending = sending

    async def _audited(self, tenant_id: str, body: Callable[[Transaction], Awaitable[T]]) -> T:
        return await self.audit.transaction(tenant_id, body)

    async def create(self, caller: Caller, *, scope: str, shortcode: str, body: str) -> CannedReply:
        require_staff(caller)
        if scope not in (cannedtext.SHARED, cannedtext.PERSONAL):
            raise InvalidArgument("scope: shared or personal", "invalid_scope")
        if scope == cannedtext.SHARED and not access.tenant_admin(caller):
            raise PermissionDenied("only tenant admins create shared replies", "forbidden")
        cannedtext.check_shortcode(shortcode)
        cannedtext.check_body(body)
        owner = SHARED_OWNER if scope == cannedtext.SHARED else caller.user_id
        cap = MAX_SHARED if scope == cannedtext.SHARED else MAX_PERSONAL
        now = self.clock.now()
        reply = CannedReply(new_id(), scope, owner, shortcode, body, now, now)

        async def write(tx: Transaction) -> CannedReply:
            store = tx.for_tenant(caller.tenant_id)
            if await store.canned.count_owned(owner) >= cap:
                raise FailedPrecondition(
                    f"at most {cap} {scope} canned replies", "canned_reply_limit"
                )
            await store.canned.insert(reply, textutil.terms(body))
            if scope == cannedtext.SHARED:
                target = Target("canned_reply", reply.id)
                await self.audit.append(
                    store, entry(caller, CANNED_CREATED, target, after=_fields(reply))
                )
            return reply

        try:
            return await self._audited(caller.tenant_id, write)
        except ShortcodeTaken:
            raise _taken(shortcode) from None

    async def update(
        self, caller: Caller, reply_id: str, *, shortcode: str | None, body: str | None
    ) -> CannedReply:
        require_staff(caller)
        if shortcode is not None:
            cannedtext.check_shortcode(shortcode)
        if body is not None:
            cannedtext.check_body(body)

        async def write(tx: Transaction) -> CannedReply:
            store = tx.for_tenant(caller.tenant_id)
            before = _visible(caller, await store.canned.get(reply_id))
            _require_editor(caller, before)
            after = replace(
                before,
                shortcode=before.shortcode if shortcode is None else shortcode,
                body=before.body if body is None else body,
                updated_at=self.clock.now(),
            )
            words = None if body is None else textutil.terms(body)
            if await store.canned.replace(after, words) is None:
                raise _not_found()
            if after.scope == cannedtext.SHARED:
                target = Target("canned_reply", after.id)
                await self.audit.append(
                    store,
                    entry(caller, CANNED_UPDATED, target, _fields(before), _fields(after)),
                )
            return after

        try:
            return await self._audited(caller.tenant_id, write)
        except ShortcodeTaken:
            raise _taken(shortcode or "") from None

    async def delete(self, caller: Caller, reply_id: str) -> None:
        require_staff(caller)

        async def write(tx: Transaction) -> None:
            store = tx.for_tenant(caller.tenant_id)
            before = _visible(caller, await store.canned.get(reply_id))
            _require_editor(caller, before)
            if not await store.canned.delete(reply_id):
                raise _not_found()
            if before.scope == cannedtext.SHARED:
                target = Target("canned_reply", before.id)
                await self.audit.append(
                    store, entry(caller, CANNED_DELETED, target, before=_fields(before))
                )

        await self._audited(caller.tenant_id, write)

    async def get(self, caller: Caller, reply_id: str) -> CannedReply:
        require_staff(caller)
        return _visible(caller, await self.store(caller).canned.get(reply_id))

    async def search(
        self, caller: Caller, *, query: str, limit: int, page_token: str
    ) -> CannedPage:
        require_staff(caller)
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidArgument("query too long", "query_too_long")
        limit = page_limit(limit, default=50)
        after = _decode(caller, query, page_token) if page_token else None
        store = self.store(caller)
        words = textutil.terms(query)[:MAX_SEARCH_TERMS]
        keys = await store.canned.keys(caller.user_id, words)
        by_id = {k.id: k for k in keys}
        ranked = [by_id[c.id] for c in cannedtext.rank(query, [_candidate(k) for k in keys])]
        if after is not None:
            ranked = [k for k in ranked if _sort_key(query, k) > after]
        page = ranked[:limit]
        found = await store.canned.get_many([k.id for k in page])
        replies = [found[k.id] for k in page if k.id in found]
        token = ""
        if len(ranked) > limit and page:
            token = _encode(caller, query, _sort_key(query, page[-1]))
        return CannedPage(replies, token)

    async def render(self, caller: Caller, conversation_id: str, reply_id: str) -> str:
        require_staff(caller)
        conv, _ = await self.readable(caller, conversation_id)
        store = self.store(caller)
        reply = _visible(caller, await store.canned.get(reply_id))
        values = await self._values(caller, store, conv.id)
        return cannedtext.render(reply.body, values)

    async def send(
        self, caller: Caller, conversation_id: str, reply_id: str, client_msg_id: str
    ) -> Sent:
        text = await self.render(caller, conversation_id, reply_id)
        return await self._sending.send(
            caller,
            conversation_id=conversation_id,
            client_msg_id=client_msg_id,
            text=text,
            kind=cpb.MESSAGE_KIND_TEXT,
            thread_root_id="",
        )

    async def _values(
        self, caller: Caller, store: TenantStore, conversation_id: str
    ) -> dict[str, str | None]:
        profile = await store.support_profile.get()
        return {
            "agent.name": caller.display_name,
            "tenant.name": profile.name if profile is not None else caller.tenant_id,
            **await self._ticket_values(store, conversation_id),
        }

    async def _ticket_values(
        self, store: TenantStore, conversation_id: str
    ) -> dict[str, str | None]:
        """The ticket's and its requester's values; none outside a ticket's
        conversation, so those variables render as variable_unavailable."""
        ticket = await store.tickets.by_conversation(conversation_id)
        if ticket is None:
            return {}
        found = await store.users.get_many([ticket.requester_id])
        requester = found.get(ticket.requester_id)
        return {
            "ticket.id": ticket.id,
            "ticket.subject": ticket.subject,
            "requester.name": requester.display_name if requester else None,
            "requester.email": requester.email if requester else None,
        }

    async def profile(self, caller: Caller) -> tuple[str, SupportProfile | None]:
        """The name {{tenant.name}} renders to (the tenant id until set), and the
        stored profile. Anyone of the tenant may read it."""
        stored = await self.store(caller).support_profile.get()
        return (stored.name if stored else caller.tenant_id), stored

    async def set_profile(self, caller: Caller, name: str) -> SupportProfile:
        if not access.tenant_admin(caller):
            raise PermissionDenied("tenant admins only", "forbidden")
        name = name.strip()
        if not name or len(name) > MAX_PROFILE_NAME:
            raise InvalidArgument(f"name: 1..{MAX_PROFILE_NAME} characters", "invalid_name")
        updated = SupportProfile(name=name, updated_at=self.clock.now())

        async def write(tx: Transaction) -> SupportProfile:
            store = tx.for_tenant(caller.tenant_id)
            before = await store.support_profile.get()
            await store.support_profile.put(updated)
            await self.audit.append(
                store,
                entry(
                    caller,
                    PROFILE_UPDATED,
                    Target("support_profile", caller.tenant_id),
                    {"name": before.name} if before else {},
                    {"name": name},
                ),
            )
            return updated

        return await self._audited(caller.tenant_id, write)
