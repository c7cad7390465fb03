"""Moderation: mutes and bans, reports, and the queue admins work through.

Who may: tenant admins everywhere (tenant-wide sanctions, the queue); the
admins of a conversation for sanctions in it. Every sanction, lift and queue
resolution is audited in the transaction that makes it.

A sanction in one conversation is one unit of work on it: the sanction, the
audit record, the ``member_muted`` / ``member_banned`` event and, for a ban,
the removal. A tenant-wide one is written with its audit record first, and is
in force from that commit (every send, edit, reaction, join and add reads it);
then each of the user's conversations gets its event (and, for a ban, the
removal) in units of ``FANOUT_CHUNK`` conversations. A crash in between leaves
some rooms untold, never the ban unenforced.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2
from confab_core.errors import (
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from confab_core.identity import Caller, is_service_user
from confab_core.limits import MAX_ID_CHARS, MAX_PAGE, MAX_REASON_CHARS
from conversation.handlers import access, attach, audit
from conversation.handlers import rolematrix as rm
from conversation.handlers.conversations import role_name
from conversation.handlers.editing import Editing
from conversation.handlers.paging import message_not_found
from conversation.handlers.unit import Change, Taken
from conversation.storage.audit import Fields, Target
from conversation.storage.conversations import Claim, Conversation
from conversation.storage.db import Transaction
from conversation.storage.messages import Message
from conversation.storage.moderation import (
    BAN,
    KIND_REPORT,
    MUTE,
    QUEUE_KINDS,
    SANCTION_KINDS,
    STATUS_OPEN,
    STATUS_RESOLVED,
    TENANT_WIDE,
    QueueEntry,
    Sanction,
)

FANOUT_CHUNK = 50
DISMISS = "dismiss"
DELETE_MESSAGE = "delete_message"
MUTE_AUTHOR = "mute_author"
BAN_AUTHOR = "ban_author"
RESOLUTIONS = frozenset({DISMISS, DELETE_MESSAGE, MUTE_AUTHOR, BAN_AUTHOR})
QUEUE_STATUSES = {"": STATUS_OPEN, STATUS_OPEN: STATUS_OPEN, STATUS_RESOLVED: STATUS_RESOLVED}
ALL = "all"

_IMPOSED = {MUTE: audit.USER_MUTED, BAN: audit.USER_BANNED}
_LIFTED = {MUTE: audit.USER_UNMUTED, BAN: audit.USER_UNBANNED}


@dataclass(frozen=True)
class ReviewItem:
    """A queue entry and its message as it is now (None: gone with its conversation)."""

    entry: QueueEntry
    message: Message | None


def _at(at: datetime | None) -> Fields:
    return {"expires_at": at.isoformat() if at else None}


def _event(
    kind: str, user_id: str, tenant_wide: bool, expires_at: datetime | None
) -> events_pb2.ConversationEvent:
    sanctioned = events_pb2.MemberSanctioned(user_id=user_id, tenant_wide=tenant_wide)
    if expires_at is not None:
        sanctioned.expires_at.FromDatetime(expires_at)
    if kind == MUTE:
        return events_pb2.ConversationEvent(member_muted=sanctioned)
    return events_pb2.ConversationEvent(member_banned=sanctioned)


def _lifted(kind: str, user_id: str, tenant_wide: bool) -> events_pb2.ConversationEvent:
    lifted = events_pb2.MemberSanctionLifted(user_id=user_id, tenant_wide=tenant_wide)
    if kind == MUTE:
        return events_pb2.ConversationEvent(member_unmuted=lifted)
    return events_pb2.ConversationEvent(member_unbanned=lifted)


def _check_target(caller: Caller, kind: str, user_id: str) -> None:
    if kind not in SANCTION_KINDS:
        raise InvalidArgument("a sanction is mute or ban", "invalid_sanction_kind")
    if not user_id or len(user_id) > MAX_ID_CHARS or is_service_user(user_id):
        raise InvalidArgument("user id must be 1-128 characters", "invalid_user_id")
    if user_id == caller.user_id:
        raise InvalidArgument("you cannot sanction yourself", "cannot_sanction_self")


def _queue_token(caller: Caller, entry: QueueEntry) -> str:
    body = {"t": caller.tenant_id, "a": entry.created_at.isoformat(), "i": entry.id}
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _queue_cursor(caller: Caller, token: str) -> tuple[datetime, str]:
    invalid = InvalidArgument("page token is not valid for this list", "invalid_cursor")
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(body, dict) or body.get("t") != caller.tenant_id:
            raise invalid
        at = datetime.fromisoformat(str(body["a"]))
        entry_id = str(body["i"])
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise invalid from exc
    if at.tzinfo is None or not entry_id:
        raise invalid
    return at, entry_id


class ModerationHandler(Editing):
    # --- sanctions -------------------------------------------------------

    async def sanction(
        self,
        caller: Caller,
        *,
        kind: str,
        user_id: str,
        conversation_id: str,
        expires_at: datetime | None,
        reason: str,
    ) -> Sanction:
        _check_target(caller, kind, user_id)
        if len(reason) > MAX_REASON_CHARS:
            raise InvalidArgument("reason too long", "reason_too_long")
        now = self.clock.now()
        if expires_at is not None and expires_at <= now:
            raise InvalidArgument("expiry must be in the future", "invalid_expiry")
        sanction = Sanction(kind, user_id, conversation_id, caller.user_id, now, expires_at, reason)
        try:
            if conversation_id:
                conv = await self._moderated(caller, conversation_id, user_id)
                await self._in_conversation(caller, conv, sanction)
            else:
                _require_tenant_admin(caller)
                await self._tenant_wide(caller, sanction)
        finally:
            self.unit.sanctions.forget(caller.tenant_id)
        return sanction

    async def _moderated(self, caller: Caller, conversation_id: str, user_id: str) -> Conversation:
        """The conversation, when the caller may moderate ``user_id`` in it."""
        conv, member = await self.readable(caller, conversation_id)
        perms = await self.granted(caller)
        access.require_moderator(perms, member)
        if conv.kind in access.FIXED_MEMBERSHIP_KINDS:
            raise PermissionDenied("this conversation cannot be moderated", "not_editable")
        target = await self.store(caller).members.get(conversation_id, user_id)
        # Only an owner (or whose role moderates every conversation) moderates an owner.
        if (
            target is not None
            and target.role == pb.MEMBER_ROLE_OWNER
            and rm.MODERATE_CHANNELS not in perms
            and (member is None or member.role != pb.MEMBER_ROLE_OWNER)
        ):
            raise PermissionDenied("only an owner moderates an owner", "forbidden")
        access.require_writable(conv)
        return conv

    async def _in_conversation(self, caller: Caller, conv: Conversation, s: Sanction) -> None:
        target = await self.store(caller).members.get(conv.id, s.user_id)
        removes = s.kind == BAN and target is not None

        async def body(t: Taken) -> None:
            await t.store.sanctions.impose(s)
            before: Fields = {"role": role_name(target.role)} if target else {}
            after = {**_at(s.expires_at), "scope": "conversation", "reason": s.reason}
            await self.audit.in_unit(t, _IMPOSED[s.kind], Target("user", s.user_id), before, after)
            t.emit(_event(s.kind, s.user_id, False, s.expires_at))
            if removes:
                if not await t.store.members.remove(conv.id, s.user_id):
                    raise FailedPrecondition("membership changed, try again", "membership_changed")
                t.emit(
                    events_pb2.ConversationEvent(
                        member_removed=events_pb2.MemberRemoved(user_id=s.user_id, left=False)
                    )
                )

        claim = Claim(events=2, member_delta=-1) if removes else Claim()
        await self.unit.one(Change(caller, conv.id, claim, audited=True), body)

    async def _tenant_wide(self, caller: Caller, s: Sanction) -> None:
        async def write(tx: Transaction) -> None:
            store = tx.for_tenant(caller.tenant_id)
            await store.sanctions.impose(s)
            after = {**_at(s.expires_at), "scope": "tenant", "reason": s.reason}
            await self.audit.append(
                store, audit.entry(caller, _IMPOSED[s.kind], Target("user", s.user_id), {}, after)
            )

        await self.audit.transaction(caller.tenant_id, write)
        await self._tell_conversations(
            caller, s.user_id, lambda: _event(s.kind, s.user_id, True, s.expires_at), s.kind == BAN
        )

    async def _tell_conversations(
        self,
        caller: Caller,
        user_id: str,
        event: Callable[[], events_pb2.ConversationEvent],
        remove: bool,
    ) -> None:
        """Emits ``event()`` in each live conversation ``user_id`` is in (removing
        them when ``remove``, except from direct and assistant conversations,
        whose membership is fixed: there the ban refuses every write)."""
        store = self.store(caller)
        ids = [m.conversation_id for m in await store.members.list_for_user(user_id)]
        if not ids:
            return
        convs = await store.conversations.get_many_by_activity(ids, len(ids), None)
        for start in range(0, len(convs), FANOUT_CHUNK):
            chunk = convs[start : start + FANOUT_CHUNK]
            removing = {
                c.id for c in chunk if remove and c.kind not in access.FIXED_MEMBERSHIP_KINDS
            }
            changes = [
                Change(
                    caller,
                    c.id,
                    Claim(events=2, member_delta=-1) if c.id in removing else Claim(),
                )
                for c in chunk
            ]

            async def body(taken: list[Taken], removing: set[str] = removing) -> None:
                for t in taken:
                    t.emit(event())
                    if t.change.conversation_id in removing:
                        if not await t.store.members.remove(t.change.conversation_id, user_id):
                            raise FailedPrecondition(
                                "membership changed, try again", "membership_changed"
                            )
                        t.emit(
                            events_pb2.ConversationEvent(
                                member_removed=events_pb2.MemberRemoved(user_id=user_id, left=False)
                            )
                        )

            await self.unit.run(changes, body)

    async def lift(self, caller: Caller, *, kind: str, user_id: str, conversation_id: str) -> None:
        try:
            await self._lift(caller, kind=kind, user_id=user_id, conversation_id=conversation_id)
        finally:
            self.unit.sanctions.forget(caller.tenant_id)

    async def _lift(self, caller: Caller, *, kind: str, user_id: str, conversation_id: str) -> None:
        _check_target(caller, kind, user_id)
        if conversation_id:
            conv = await self._moderated(caller, conversation_id, user_id)
            if await self.store(caller).sanctions.get(kind, user_id, conversation_id) is None:
                raise _sanction_not_found()

            async def body(t: Taken) -> None:
                if not await t.store.sanctions.lift(kind, user_id, conversation_id):
                    raise _sanction_not_found()
                await self.audit.in_unit(
                    t, _LIFTED[kind], Target("user", user_id), {"scope": "conversation"}, {}
                )
                t.emit(_lifted(kind, user_id, False))

            await self.unit.one(Change(caller, conv.id, audited=True), body)
            return
        _require_tenant_admin(caller)

        async def write(tx: Transaction) -> None:
            store = tx.for_tenant(caller.tenant_id)
            if not await store.sanctions.lift(kind, user_id, TENANT_WIDE):
                raise _sanction_not_found()
            await self.audit.append(
                store,
                audit.entry(caller, _LIFTED[kind], Target("user", user_id), {"scope": "tenant"}),
            )

        await self.audit.transaction(caller.tenant_id, write)
        await self._tell_conversations(
            caller, user_id, lambda: _lifted(kind, user_id, True), remove=False
        )

    async def sanctions(
        self, caller: Caller, *, conversation_id: str, user_id: str, limit: int
    ) -> list[Sanction]:
        """Active sanctions: one conversation's (its admins), or all (tenant admins)."""
        if len(user_id) > MAX_ID_CHARS:
            raise InvalidArgument("user id too long", "invalid_user_id")
        limit = MAX_PAGE if limit <= 0 else min(limit, MAX_PAGE)
        if conversation_id:
            _, member = await self.readable(caller, conversation_id)
            access.require_moderator(await self.granted(caller), member)
            scope: str | None = conversation_id
        else:
            _require_tenant_admin(caller)
            scope = None
        found = await self.store(caller).sanctions.listing(
            conversation_id=scope, user_id=user_id, limit=limit
        )
        now = self.clock.now()
        return [s for s in found if s.active(now)]

    # --- reports and the queue ----------------------------------------------

    async def report(
        self, caller: Caller, *, conversation_id: str, message_id: str, reason: str
    ) -> ReviewItem:
        reason = reason.strip()
        if not reason or len(reason) > MAX_REASON_CHARS:
            raise InvalidArgument(f"a reason is 1-{MAX_REASON_CHARS} characters", "invalid_reason")
        if not message_id or len(message_id) > MAX_ID_CHARS:
            raise message_not_found()
        await self.readable(caller, conversation_id)
        message = await self.store(caller).messages.get(conversation_id, message_id)
        if message is None or message.deleted:
            raise message_not_found()
        if message.sender_id == caller.user_id:
            raise InvalidArgument("you cannot report your own message", "cannot_report_own")
        now = self.clock.now()

        async def add(tx: Transaction) -> tuple[QueueEntry, bool]:
            return await tx.for_tenant(caller.tenant_id).moderation.add(
                kind=KIND_REPORT,
                conversation_id=conversation_id,
                message_id=message_id,
                author_id=message.sender_id,
                now=now,
                reporter_id=caller.user_id,
                reason=reason,
            )

        entry, created = await self._db.transaction(add)
        if not created:
            raise Conflict("you already reported this message", "already_reported")
        return ReviewItem(entry, message)

    async def queue(
        self, caller: Caller, *, status: str, kind: str, limit: int, page_token: str
    ) -> tuple[list[ReviewItem], str]:
        _require_tenant_admin(caller)
        if status != ALL and status not in QUEUE_STATUSES:
            raise InvalidArgument("status is open, resolved or all", "invalid_status")
        if kind and kind not in QUEUE_KINDS:
            raise InvalidArgument("kind is report or pii", "invalid_kind")
        limit = MAX_PAGE if limit <= 0 else min(limit, MAX_PAGE)
        after = _queue_cursor(caller, page_token) if page_token else None
        store = self.store(caller)
        entries = await store.moderation.page(
            status="" if status == ALL else QUEUE_STATUSES[status],
            kind=kind,
            limit=limit + 1,
            after=after,
        )
        page = entries[:limit]
        # One read per entry, all at once: a page is at most MAX_PAGE entries.
        messages = await asyncio.gather(
            *(store.messages.get(e.conversation_id, e.message_id) for e in page)
        )
        items = [ReviewItem(e, m) for e, m in zip(page, messages, strict=True)]
        token = _queue_token(caller, page[-1]) if len(entries) > limit else ""
        return items, token

    async def resolve(
        self,
        caller: Caller,
        *,
        entry_id: str,
        action: str,
        expires_at: datetime | None,
        tenant_wide: bool,
    ) -> ReviewItem:
        _require_tenant_admin(caller)
        if action not in RESOLUTIONS:
            raise InvalidArgument(
                "action is dismiss, delete_message, mute_author or ban_author", "invalid_action"
            )
        if len(entry_id) > MAX_ID_CHARS:
            raise _entry_not_found()
        store = self.store(caller)
        entry = await store.moderation.get(entry_id)
        if entry is None:
            raise _entry_not_found()
        if entry.status != STATUS_OPEN:
            raise Conflict("this entry is already resolved", "already_resolved")
        if action in (MUTE_AUTHOR, BAN_AUTHOR):
            conv = await store.conversations.get(entry.conversation_id)
            if not tenant_wide and conv is not None and conv.kind in access.FIXED_MEMBERSHIP_KINDS:
                # Tenant admins do not see into others' direct conversations, and
                # their membership is fixed: only a tenant-wide sanction applies.
                raise PermissionDenied("sanction this author tenant-wide", "not_editable")
            await self.sanction(
                caller,
                kind=MUTE if action == MUTE_AUTHOR else BAN,
                user_id=entry.author_id,
                conversation_id="" if tenant_wide else entry.conversation_id,
                expires_at=expires_at,
                reason=f"moderation queue entry {entry.id}",
            )
        resolved = await self._resolve_entry(caller, entry, action)
        message = await store.messages.get(entry.conversation_id, entry.message_id)
        return ReviewItem(resolved, message)

    async def _resolve_entry(self, caller: Caller, entry: QueueEntry, action: str) -> QueueEntry:
        now = self.clock.now()
        items: list[tuple[str, Target, Fields, Fields]] = [
            (
                audit.REPORT_RESOLVED,
                Target("queue_entry", entry.id),
                {"status": entry.status, "kind": entry.kind, "message_id": entry.message_id},
                {"status": STATUS_RESOLVED, "resolution": action},
            )
        ]
        if action == DELETE_MESSAGE:
            store = self.store(caller)
            message = await store.messages.get(entry.conversation_id, entry.message_id)
            conv = await store.conversations.get(entry.conversation_id)
            if (
                message is not None
                and not message.deleted
                and conv is not None
                and not conv.deleted
            ):
                items.append(
                    (
                        audit.MESSAGE_DELETED_BY_OTHER,
                        Target("message", entry.message_id),
                        {"sender_id": message.sender_id},
                        {"deleted": True},
                    )
                )

                file_id = attach.file_of(message)

                async def body(t: Taken) -> QueueEntry:
                    await self.tombstone_in(t, entry.message_id, file_id)
                    resolved = await t.store.moderation.resolve(
                        entry.id, action, caller.user_id, now
                    )
                    if resolved is None:
                        raise Conflict("this entry is already resolved", "already_resolved")
                    await self.audit.in_unit_all(t, items)
                    return resolved

                change = Change(
                    caller,
                    entry.conversation_id,
                    Claim(events=2 if file_id else 1),
                    audited=True,
                )
                done, _ = await self.unit.one(change, body)
                return done

        async def write(tx: Transaction) -> QueueEntry:
            store = tx.for_tenant(caller.tenant_id)
            resolved = await store.moderation.resolve(entry.id, action, caller.user_id, now)
            if resolved is None:
                raise Conflict("this entry is already resolved", "already_resolved")
            entries = [
                audit.entry(caller, a, tg, b, af, conversation_id=entry.conversation_id)
                for a, tg, b, af in items
            ]
            await store.audit.append_many(entries, now)
            return resolved

        return await self.audit.transaction(caller.tenant_id, write)


def _require_tenant_admin(caller: Caller) -> None:
    if not access.tenant_admin(caller):
        raise PermissionDenied("tenant admins only", "forbidden")


def _sanction_not_found() -> NotFound:
    return NotFound("no such sanction", "sanction_not_found")


def _entry_not_found() -> NotFound:
    return NotFound("no such queue entry", "queue_entry_not_found")
