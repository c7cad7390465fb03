"""What the bot keeps about conversations (memory, the summary cache) and the
tenant's model usage against its monthly quota.

Memory, the summary cache and recording usage are the bot's own: service
callers only. None of it is audited: these are the bot's bookkeeping, written
on every reply, not an admin's decision; the messages they derive from are
where the conversation's record lives. Reading usage is for tenant admins,
platform staff acting in the tenant, and services: an ordinary read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from confab_core.clock import Clock
from confab_core.errors import InvalidArgument, PermissionDenied
from confab_core.identity import (
    PLATFORM_USER_PREFIX,
    ROLE_SERVICE,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
    Caller,
)
from confab_core.limits import MAX_ID_CHARS
from conversation.handlers import access, rolematrix
from conversation.storage.botdata import (
    AgentTokens,
    AlreadyRecorded,
    CachedSummary,
    Call,
    StoredMemory,
)
from conversation.storage.conversations import Conversation
from conversation.storage.db import Database, TenantStore, Transaction

# A rolling summary is a few paragraphs; this bounds what one write can store.
MAX_SUMMARY_CHARS = 20_000
# More than any model's context: a bigger count is a bug in the caller.
MAX_CALL_TOKENS = 10_000_000
PURPOSES = frozenset({"unspecified", "reply", "memory", "summary", "topic_check"})
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


@dataclass(frozen=True, slots=True)
class Usage:
    month: str
    tokens_in: int
    tokens_out: int
    quota_tokens: int
    over_quota: bool
    agents: list[AgentTokens]


@dataclass(frozen=True, slots=True)
class Recorded:
    usage: Usage
    # False for a call counted before (a redelivery).
    counted: bool


def _require_service(caller: Caller) -> None:
    if not caller.has_role(ROLE_SERVICE):
        raise PermissionDenied("bot data is for the services only", "forbidden")


def _may_read_usage(caller: Caller) -> bool:
    acting_staff = caller.has_role(ROLE_SUPER_ADMIN) and caller.user_id.startswith(
        PLATFORM_USER_PREFIX
    )
    return caller.has_role(ROLE_TENANT_ADMIN, ROLE_SERVICE) or acting_staff


def _id(value: str, what: str, *, required: bool = True) -> str:
    if (required and not value) or len(value) > MAX_ID_CHARS:
        raise InvalidArgument(
            f"{what} is {'required, ' if required else ''}at most {MAX_ID_CHARS} characters",
            f"invalid_{what}",
        )
    return value


def _summary(text: str) -> str:
    if len(text) > MAX_SUMMARY_CHARS:
        raise InvalidArgument(
            f"summary is at most {MAX_SUMMARY_CHARS} characters", "summary_too_long"
        )
    return text


def _seq(seq: int, conv: Conversation) -> int:
    if seq < 0 or seq > conv.last_seq:
        raise InvalidArgument(
            f"seq must be between 0 and the conversation's last seq ({conv.last_seq})",
            "invalid_seq",
        )
    return seq


def _tokens(value: int) -> int:
    if value < 0 or value > MAX_CALL_TOKENS:
        raise InvalidArgument(f"token counts are between 0 and {MAX_CALL_TOKENS}", "invalid_tokens")
    return value


def valid_month(month: str) -> str:
    if not _MONTH.fullmatch(month):
        raise InvalidArgument("month is YYYY-MM", "invalid_month")
    return month


class BotDataHandler:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def _store(self, caller: Caller) -> TenantStore:
        return self._db.for_tenant(caller.tenant_id)

    async def _conversation(self, caller: Caller, conversation_id: str) -> Conversation:
        """The conversation, live and of the caller's tenant, or NotFound."""
        _id(conversation_id, "conversation_id")
        conv = await self._store(caller).conversations.get(conversation_id)
        # Only service callers get here, and a tenant's matrix never changes their rights.
        perms = rolematrix.granted(rolematrix.DEFAULT_MATRIX, caller)
        return access.require_visible(caller, perms, conv, None)

    def month(self) -> str:
        return self._clock.now().strftime("%Y-%m")

    async def memory(
        self, caller: Caller, conversation_id: str, agent_id: str
    ) -> StoredMemory | None:
        _require_service(caller)
        _id(agent_id, "agent_id", required=False)
        await self._conversation(caller, conversation_id)
        return await self._store(caller).bot_memory.memory(conversation_id, agent_id)

    async def put_memory(
        self,
        caller: Caller,
        conversation_id: str,
        agent_id: str,
        summary: str,
        through_seq: int,
    ) -> tuple[StoredMemory, bool]:
        """The memory stored afterwards, and whether this one was (a summary
        covering fewer messages than the stored one is not)."""
        _require_service(caller)
        _id(agent_id, "agent_id", required=False)
        _summary(summary)
        conv = await self._conversation(caller, conversation_id)
        _seq(through_seq, conv)
        store = self._store(caller)
        wanted = StoredMemory(conversation_id, agent_id, summary, through_seq, self._clock.now())
        if await store.bot_memory.put_memory(wanted):
            return wanted, True
        current = await store.bot_memory.memory(conversation_id, agent_id)
        return current or wanted, False

    async def cached_summary(
        self, caller: Caller, conversation_id: str, last_seq: int
    ) -> str | None:
        _require_service(caller)
        await self._conversation(caller, conversation_id)
        found = await self._store(caller).bot_memory.cached_summary(conversation_id)
        return found.summary if found is not None and found.last_seq == last_seq else None

    async def put_cached_summary(
        self, caller: Caller, conversation_id: str, last_seq: int, summary: str
    ) -> bool:
        _require_service(caller)
        _summary(summary)
        conv = await self._conversation(caller, conversation_id)
        _seq(last_seq, conv)
        cached = CachedSummary(conversation_id, last_seq, summary, self._clock.now())
        return await self._store(caller).bot_memory.put_summary(cached)

    async def record_usage(
        self,
        caller: Caller,
        *,
        call_id: str,
        agent_id: str,
        conversation_id: str,
        purpose: str,
        tokens_in: int,
        tokens_out: int,
    ) -> Recorded:
        _require_service(caller)
        call = Call(
            call_id=_id(call_id, "call_id"),
            agent_id=_id(agent_id, "agent_id", required=False),
            conversation_id=_id(conversation_id, "conversation_id", required=False),
            purpose=purpose if purpose in PURPOSES else "unspecified",
            tokens_in=_tokens(tokens_in),
            tokens_out=_tokens(tokens_out),
            month=self.month(),
            at=self._clock.now(),
        )

        async def body(t: Transaction) -> None:
            await t.for_tenant(caller.tenant_id).usage.record(call)

        try:
            await self._db.transaction(body)
            counted = True
        except AlreadyRecorded:
            counted = False
        return Recorded(await self._usage(caller, call.month), counted)

    async def usage(self, caller: Caller, month: str) -> Usage:
        if not _may_read_usage(caller):
            raise PermissionDenied("tenant admins and platform staff read usage", "forbidden")
        return await self._usage(caller, valid_month(month) if month else self.month())

    async def _usage(self, caller: Caller, month: str) -> Usage:
        store = self._store(caller)
        agents = await store.usage.month(month)
        quota = await store.usage.quota()
        tokens_in = sum(a.tokens_in for a in agents)
        tokens_out = sum(a.tokens_out for a in agents)
        return Usage(
            month=month,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            quota_tokens=quota,
            over_quota=quota > 0 and tokens_in + tokens_out >= quota,
            agents=agents,
        )
