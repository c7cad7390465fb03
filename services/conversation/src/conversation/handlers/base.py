"""What every handler shares: the unit of work, the store, the clock, access."""

from __future__ import annotations

import asyncio

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.identity import ROLE_SERVICE, Caller
from conversation import convert
from conversation.handlers import access, sanctions
from conversation.handlers.audit import AuditTrail
from conversation.handlers.pii import PiiGuard
from conversation.handlers.policy import PolicyHandler
from conversation.handlers.unit import UnitOfWork
from conversation.storage.conversations import Conversation
from conversation.storage.db import TenantStore
from conversation.storage.members import Member


class HandlerBase:
    def __init__(self, unit: UnitOfWork, policies: PolicyHandler | None = None) -> None:
        # Handlers write only through the unit of work they are given, and share
        # its writer locks with every other handler built on it.
        self.unit = unit
        self.clock = unit.clock
        self._db = unit.database
        # The process's policy cache when given (the app shares one), else its own.
        self.pii = PiiGuard(self._db, policies or PolicyHandler(self._db, self.clock))
        self.audit = AuditTrail(unit.database, unit.clock, unit.locks)
        self._seen_profiles: dict[tuple[str, str], tuple[str, str, tuple[str, ...]]] = {}

    def store(self, caller: Caller) -> TenantStore:
        return self._db.for_tenant(caller.tenant_id)

    async def granted(self, caller: Caller) -> frozenset[str]:
        """The chat permissions the caller's roles hold in its tenant now."""
        return await self.unit.roles.granted(caller)

    async def remember_profile(self, caller: Caller) -> None:
        """Keeps the users collection current without a write per call."""
        if ROLE_SERVICE in caller.roles:
            return
        key = (caller.tenant_id, caller.user_id)
        # Roles are part of the key: a user made agent shows up in the roster
        # auto-assignment reads at their next call.
        roles = tuple(sorted(caller.roles))
        value = (caller.display_name, caller.email, roles)
        if self._seen_profiles.get(key) == value:
            return
        await self.store(caller).users.upsert(
            caller.user_id, caller.display_name, caller.email, self.clock.now(), roles
        )
        if len(self._seen_profiles) > 50_000:
            self._seen_profiles.clear()
        self._seen_profiles[key] = value

    async def readable(
        self, caller: Caller, conversation_id: str
    ) -> tuple[Conversation, Member | None]:
        """The conversation and the caller's membership, or NotFound.

        Another tenant's conversation, or one the caller may not see, is
        indistinguishable from one that does not exist.
        """
        store = self.store(caller)
        # Both at once: one round trip of waiting instead of two, on every call.
        conv, member, perms = await asyncio.gather(
            store.conversations.get(conversation_id),
            store.members.get(conversation_id, caller.user_id),
            self.granted(caller),
        )
        if conv is None:
            member = None
        return access.require_visible(caller, perms, conv, member), member

    async def writable_by(
        self, caller: Caller, conversation_id: str
    ) -> tuple[Conversation, Member | None]:
        """``readable``, and the caller is neither muted nor banned there: what a
        send, an edit or a reaction needs. The sanctions come from the
        process's view (``SanctionCache``), read beside the conversation and the
        membership when it has to be refreshed."""
        store = self.store(caller)
        conv, member, against, perms = await asyncio.gather(
            store.conversations.get(conversation_id),
            store.members.get(conversation_id, caller.user_id),
            self.unit.sanctions.against(store, caller.tenant_id, caller.user_id, conversation_id),
            self.granted(caller),
        )
        if conv is None:
            member = None
        visible = access.require_visible(caller, perms, conv, member)
        sanctions.refuse_sanctioned(against, self.clock.now())
        return visible, member

    async def counts(
        self, caller: Caller, conv: Conversation, member: Member | None
    ) -> tuple[int, int]:
        """Unread and mention counts, counted from seq: exact by construction."""
        if member is None or member.last_read_seq >= conv.last_seq:
            return 0, 0
        found = await self.store(caller).messages.unread_counts(
            caller.user_id, {conv.id: member.last_read_seq}
        )
        return found[conv.id]

    async def view(
        self, caller: Caller, conv: Conversation, member: Member | None
    ) -> pb.Conversation:
        return (await self.views(caller, [(conv, member)]))[0]

    async def views(
        self, caller: Caller, pairs: list[tuple[Conversation, Member | None]]
    ) -> list[pb.Conversation]:
        """Conversations with the caller's counts, all counted at once."""
        behind = {
            conv.id: member.last_read_seq
            for conv, member in pairs
            if member is not None and member.last_read_seq < conv.last_seq
        }
        counts = (
            await self.store(caller).messages.unread_counts(caller.user_id, behind)
            if behind
            else {}
        )
        return [
            convert.conversation(
                conv,
                member,
                unread=counts.get(conv.id, (0, 0))[0],
                mentions=counts.get(conv.id, (0, 0))[1],
            )
            for conv, member in pairs
        ]
