"""Creating, reading and listing conversations."""

from __future__ import annotations

from dataclasses import dataclass

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2
from confab_core.errors import InvalidArgument, NotFound
from confab_core.identity import Caller
from confab_core.ids import new_id
from confab_core.mongo import Doc
from confab_core.telemetry import tracer
from conversation import convert
from conversation.handlers.base import HandlerBase
from conversation.limits import (
    BOT_USER_ID,
    MAX_DESCRIPTION_CHARS,
    MAX_MEMBERS_AT_CREATE,
    MAX_PAGE,
    MAX_TITLE_CHARS,
)
from conversation.storage.members import member_id

_KINDS = set(pb.ConversationKind.values()) - {pb.CONVERSATION_KIND_UNSPECIFIED}


@dataclass(frozen=True)
class Created:
    conversation: Doc
    member: Doc
    created: bool


class ConversationHandler(HandlerBase):
    async def create(
        self,
        caller: Caller,
        *,
        kind: int,
        title: str,
        description: str,
        member_ids: list[str],
        context: tuple[str, str] | None,
    ) -> Created:
        with tracer().start_as_current_span(
            "confab.conversation.create",
            attributes={"confab.tenant_id": caller.tenant_id, "confab.conversation.kind": kind},
        ):
            if kind not in _KINDS:
                raise InvalidArgument("unknown conversation kind", "invalid_kind")
            if len(title) > MAX_TITLE_CHARS:
                raise InvalidArgument(
                    f"title exceeds {MAX_TITLE_CHARS} characters", "title_too_long"
                )
            if len(description) > MAX_DESCRIPTION_CHARS:
                raise InvalidArgument("description too long", "description_too_long")
            others = sorted({m for m in member_ids if m and m != caller.user_id})
            if len(others) > MAX_MEMBERS_AT_CREATE:
                raise InvalidArgument("too many members", "too_many_members")
            if any(len(m) > 128 for m in others):
                raise InvalidArgument("member id too long", "invalid_member_id")
            await self.remember_profile(caller)
            direct_key: str | None = None
            if kind == pb.CONVERSATION_KIND_DIRECT:
                if len(others) != 1:
                    raise InvalidArgument(
                        "a direct conversation has exactly one other member",
                        "direct_needs_one_member",
                    )
                direct_key = "direct:" + "|".join(sorted([caller.user_id, others[0]]))
                existing = await self.store(caller).conversations.get_direct(direct_key)
                if existing is not None:
                    return await self._existing(caller, existing)
            if kind == pb.CONVERSATION_KIND_AI_ASSISTANT:
                # An assistant conversation is the user and the bot, nobody else.
                others = [BOT_USER_ID]
            try:
                return await self._insert(
                    caller, kind, title, description, others, context, direct_key
                )
            except DuplicateKeyError:
                # Lost a race to create the same direct conversation.
                if direct_key is None:
                    raise
                existing = await self.store(caller).conversations.get_direct(direct_key)
                if existing is None:
                    raise
                return await self._existing(caller, existing)

    async def _existing(self, caller: Caller, conv: Doc) -> Created:
        member = await self.store(caller).members.get(conv["_id"], caller.user_id)
        if member is None:
            raise NotFound("conversation not found", "conversation_not_found")
        return Created(conv, member, created=False)

    async def _insert(
        self,
        caller: Caller,
        kind: int,
        title: str,
        description: str,
        others: list[str],
        context: tuple[str, str] | None,
        direct_key: str | None,
    ) -> Created:
        store = self.store(caller)
        now = self.clock.now()
        conv_id = new_id()
        conv: Doc = {
            "_id": conv_id,
            "kind": kind,
            "title": title,
            "description": description,
            "topic": "",
            "created_by": caller.user_id,
            "created_at": now,
            "last_activity_at": now,
            "last_seq": 0,
            "last_event_seq": 1,
            "member_count": 1 + len(others),
            "context": {"kind": context[0], "id": context[1]} if context else None,
            "archived": False,
            # Unique per tenant: direct pairs collide on purpose, others never do.
            "direct_key": direct_key or conv_id,
        }
        owner: Doc = {
            "_id": member_id(conv_id, caller.user_id),
            "conversation_id": conv_id,
            "user_id": caller.user_id,
            "role": pb.MEMBER_ROLE_OWNER,
            "joined_at": now,
            "last_read_seq": 0,
        }
        rest = [
            {
                "_id": member_id(conv_id, uid),
                "conversation_id": conv_id,
                "user_id": uid,
                "role": pb.MEMBER_ROLE_MEMBER,
                "joined_at": now,
                "last_read_seq": 0,
            }
            for uid in others
        ]

        async def write(session: AsyncClientSession) -> None:
            await store.conversations.insert(conv, session)
            for doc in [owner, *rest]:
                await store.members.insert(doc, session)
            event = events_pb2.ConversationEvent(
                conversation_created=events_pb2.ConversationCreated(
                    conversation=convert.conversation(conv, None),
                    member_ids=[caller.user_id, *others],
                )
            )
            await self.emit(store, session, caller, conv, event)

        await self.transaction(write)
        return Created(conv, owner, created=True)

    async def get(self, caller: Caller, conversation_id: str) -> tuple[Doc, Doc | None]:
        return await self.readable(caller, conversation_id)

    async def list_for_caller(self, caller: Caller, limit: int) -> list[tuple[Doc, Doc]]:
        limit = MAX_PAGE if limit <= 0 else min(limit, MAX_PAGE)
        # Listing is usually a client's first call: the profile (name, address)
        # must be known before anyone needs to notify this user.
        await self.remember_profile(caller)
        store = self.store(caller)
        members = {
            m["conversation_id"]: m for m in await store.members.list_for_user(caller.user_id)
        }
        convs = await store.conversations.get_many_by_activity(list(members), limit)
        return [(c, members[c["_id"]]) for c in convs]

    async def list_members(
        self, caller: Caller, conversation_id: str
    ) -> list[tuple[Doc, Doc | None]]:
        await self.readable(caller, conversation_id)
        store = self.store(caller)
        members = await store.members.list_for_conversation(conversation_id)
        profiles = await store.users.get_many([m["user_id"] for m in members])
        return [(m, profiles.get(m["user_id"])) for m in members]
