"""The tenant's PII policy, applied to what a message write would store: its
text and its file's name, before anything else (mentions, search words, the
event) is computed from them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter

from confab_core import pii
from confab_core.errors import InvalidArgument
from confab_core.identity import ROLE_SERVICE, Caller
from conversation.handlers.policy import PolicyHandler
from conversation.storage.db import Database, TenantStore
from conversation.storage.messages import Message
from conversation.storage.moderation import KIND_PII

PII_FOUND = Counter(
    "confab_conversation_pii_total",
    "Message writes carrying PII, by kind and by what the tenant's policy did",
    ["kind", "action"],
)


@dataclass(frozen=True, slots=True)
class Screened:
    """A write's text and file name as they may be stored, and the PII kinds to
    mark the message with (flag mode only: a masked message carries none)."""

    text: str
    file_name: str | None
    flagged: tuple[str, ...] = ()


class PiiGuard:
    def __init__(self, db: Database, policies: PolicyHandler) -> None:
        self._db = db
        self._policies = policies

    async def screen(self, caller: Caller, text: str, file_name: str | None) -> Screened:
        """Raises ``pii_blocked`` in block mode; masks in mask mode; names the kinds
        found in flag mode. A service's write (a bot's reply) is masked where a
        user's would be blocked: it cannot rephrase."""
        policy = await self._policies.current(caller.tenant_id)
        if policy.pii_mode == "off":
            return Screened(text, file_name)
        in_text = pii.scan(text, policy.pii_kinds) if text else []
        in_name = pii.scan(file_name, policy.pii_kinds) if file_name else []
        if not in_text and not in_name:
            return Screened(text, file_name)
        kinds = tuple(k for k in pii.KINDS if any(f.kind == k for f in in_text + in_name))
        action = policy.pii_mode
        if action == "block" and caller.has_role(ROLE_SERVICE):
            action = "mask"
        for kind in kinds:
            PII_FOUND.labels(kind, action).inc()
        await self._db.pii_counts(caller.tenant_id).add(kinds)
        if action == "block":
            raise InvalidArgument(
                f"this tenant does not accept messages containing: {', '.join(kinds)}",
                "pii_blocked",
            )
        if action == "mask":
            return Screened(
                pii.mask(text, in_text),
                pii.mask(file_name, in_name) if file_name is not None else None,
            )
        return Screened(text, file_name, kinds)

    async def screen_file_name(self, caller: Caller, name: str) -> str:
        """An uploaded file's name as the tenant's policy lets it be stored:
        ``pii_blocked`` (422, as for text) in block mode, masked in mask mode. In
        flag mode it is stored as written and not counted here: the message that
        attaches the file screens the name again with its text, and is flagged
        and counted then, once."""
        policy = await self._policies.current(caller.tenant_id)
        if policy.pii_mode in ("off", "flag") or not name:
            return name
        return (await self.screen(caller, "", name)).file_name or ""


async def queue_flagged(store: TenantStore, message: Message, now: datetime) -> None:
    """The one place a flagged message enters the moderation queue (owned by
    handlers/moderation), in the transaction that stores the message."""
    if message.pii_kinds:
        await store.moderation.add(
            kind=KIND_PII,
            conversation_id=message.conversation_id,
            message_id=message.id,
            author_id=message.sender_id,
            now=now,
            pii_kinds=message.pii_kinds,
        )
