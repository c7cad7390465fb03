"""Conversations and their members."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, cast

from pymongo.errors import DuplicateKeyError

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2
from confab_core.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from confab_core.identity import BOT_USER_ID, Caller, agent_user_id
from confab_core.ids import new_id
from confab_core.limits import (
    MAX_DESCRIPTION_CHARS,
    MAX_ID_CHARS,
    MAX_MEMBERS_AT_CREATE,
    MAX_PAGE,
    MAX_TITLE_CHARS,
    MAX_TOPIC_CHARS,
)
from confab_core.telemetry import tracer
from conversation import convert
from conversation.handlers import access, audit, pagetoken, sanctions
from conversation.handlers.base import HandlerBase
from conversation.handlers.unit import Change, Taken
from conversation.storage.agents import ASSISTANT, PICKABLE, Agent
from conversation.storage.audit import Fields, Target
from conversation.storage.conversations import ActivityCursor, Claim, Conversation
from conversation.storage.members import Member
from conversation.storage.users import UserProfile

_KINDS = set(pb.ConversationKind.values()) - {pb.CONVERSATION_KIND_UNSPECIFIED}
_ROLES = set(pb.MemberRole.values()) - {pb.MEMBER_ROLE_UNSPECIFIED}


@dataclass(frozen=True)
class ConversationPage:
    conversations: list[pb.Conversation]
    # Empty on the last page.
    next_page_token: str


@dataclass(frozen=True)
class Created:
    conversation: pb.Conversation
    created: bool


def _serving_agent(agents: tuple[Agent, ...], agent_id: str) -> Agent | None:
    """The agent a new ai_assistant conversation is with: the one named (a
    pickable or the assistant agent, enabled), else the tenant's assistant."""
    if agent_id:
        for agent in agents:
            if agent.id == agent_id and agent.enabled and agent.role in (ASSISTANT, PICKABLE):
                return agent
        raise InvalidArgument("no such agent to talk to", "unknown_agent")
    return next((a for a in agents if a.role == ASSISTANT and a.enabled), None)


def _check_ids(user_ids: list[str]) -> None:
    if any(not u or len(u) > MAX_ID_CHARS for u in user_ids):
        raise InvalidArgument("member ids must be 1-128 characters", "invalid_member_id")


class TicketOpener(Protocol):
    """Opens a ticket with its support conversation (handlers/support.py)."""

    async def open_conversation(
        self, caller: Caller, *, title: str, context: tuple[str, str] | None
    ) -> pb.Conversation: ...


class ConversationHandler(HandlerBase):
    # Set by the app: a support conversation is created with its ticket.
    tickets: TicketOpener | None = None

    async def create(
        self,
        caller: Caller,
        *,
        kind: int,
        title: str,
        description: str,
        member_ids: list[str],
        context: tuple[str, str] | None,
        agent_id: str = "",
    ) -> Created:
        with tracer().start_as_current_span(
            "confab.conversation.create",
            attributes={"confab.tenant_id": caller.tenant_id, "confab.conversation.kind": kind},
        ):
            if kind not in _KINDS:
                raise InvalidArgument("unknown conversation kind", "invalid_kind")
            if not access.can_create(caller, kind):
                raise PermissionDenied("agents and admins create channels", "forbidden_kind")
            _check_text_fields(title, description, "")
            others = sorted({m for m in member_ids if m and m != caller.user_id})
            if len(others) > MAX_MEMBERS_AT_CREATE:
                raise InvalidArgument("too many members", "too_many_members")
            _check_ids(others)
            if context and (not context[0] or not context[1]):
                raise InvalidArgument("a context link needs a kind and an id", "invalid_context")
            if agent_id and kind != pb.CONVERSATION_KIND_AI_ASSISTANT:
                raise InvalidArgument(
                    "only ai_assistant conversations name an agent", "agent_not_allowed"
                )
            bans = await self.store(caller).sanctions.bans_among(
                [caller.user_id, *others], sanctions.TENANT_WIDE
            )
            sanctions.refuse_banned(bans, self.clock.now())
            await self.remember_profile(caller)
            if kind == pb.CONVERSATION_KIND_SUPPORT and self.tickets is not None:
                # The requester and, once assigned, the assignee are its members.
                opened = await self.tickets.open_conversation(caller, title=title, context=context)
                return Created(opened, created=True)
            direct_key: str | None = None
            if kind == pb.CONVERSATION_KIND_DIRECT:
                if len(others) != 1:
                    raise InvalidArgument(
                        "a direct conversation has exactly one other member",
                        "direct_needs_one_member",
                    )
                direct_key = "direct:" + "|".join(sorted([caller.user_id, others[0]]))
                existing = await self.store(caller).conversations.get_direct(direct_key)
                if existing is not None and not existing.deleted:
                    return await self._existing(caller, existing)
            serving = ""
            if kind == pb.CONVERSATION_KIND_AI_ASSISTANT:
                # An assistant conversation is the user and its agent's bot user,
                # nobody else; the legacy bot when the tenant has no assistant agent.
                agent = _serving_agent(await self.store(caller).agents.agents(), agent_id)
                serving = agent.id if agent else ""
                others = [agent_user_id(serving) if serving else BOT_USER_ID]
            try:
                return await self._insert(
                    caller, kind, title, description, others, context, direct_key, serving
                )
            except DuplicateKeyError:
                # Lost a race to create the same direct conversation.
                if direct_key is None:
                    raise
                existing = await self.store(caller).conversations.get_direct(direct_key)
                if existing is None:
                    raise
                return await self._existing(caller, existing)

    async def _existing(self, caller: Caller, conv: Conversation) -> Created:
        member = await self.store(caller).members.get(conv.id, caller.user_id)
        access.require_visible(caller, conv, member)
        return Created(await self.view(caller, conv, member), created=False)

    async def _insert(
        self,
        caller: Caller,
        kind: int,
        title: str,
        description: str,
        others: list[str],
        context: tuple[str, str] | None,
        direct_key: str | None,
        agent_id: str = "",
    ) -> Created:
        now = self.clock.now()
        conv_id = new_id()
        conv = Conversation(
            id=conv_id,
            kind=kind,
            title=title,
            description=description,
            topic="",
            created_by=caller.user_id,
            created_at=now,
            last_activity_at=now,
            last_seq=0,
            # The creation is the conversation's first event.
            last_event_seq=1,
            member_count=1 + len(others),
            context=context,
            archived=False,
            deleted=False,
            agent_id=agent_id,
        )
        roles = {caller.user_id: pb.MEMBER_ROLE_OWNER}
        roles.update((uid, pb.MEMBER_ROLE_MEMBER) for uid in others)

        async def body(t: Taken) -> Member:
            docs = await t.store.members.insert_members(conv_id, roles, now)
            t.emit(
                events_pb2.ConversationEvent(
                    conversation_created=events_pb2.ConversationCreated(
                        conversation=convert.conversation(conv, None),
                        member_ids=[caller.user_id, *others],
                    )
                )
            )
            return docs[0]

        owner, _ = await self.unit.one(
            Change(caller, conv_id, new=conv, direct_key=direct_key or ""), body
        )
        return Created(convert.conversation(conv, owner), created=True)

    async def get(self, caller: Caller, conversation_id: str) -> pb.Conversation:
        conv, member = await self.readable(caller, conversation_id)
        return await self.view(caller, conv, member)

    async def list_for_caller(
        self, caller: Caller, limit: int, page_token: str = ""
    ) -> ConversationPage:
        limit = MAX_PAGE if limit <= 0 else min(limit, MAX_PAGE)
        after = pagetoken.decode(caller, page_token) if page_token else None
        # Listing is usually a client's first call: the profile (name, address)
        # must be known before anyone needs to notify this user.
        await self.remember_profile(caller)
        store = self.store(caller)
        members = {m.conversation_id: m for m in await store.members.list_for_user(caller.user_id)}
        convs = await store.conversations.get_many_by_activity(list(members), limit + 1, after)
        page = convs[:limit]
        views = await self.views(caller, [(c, members[c.id]) for c in page])
        if len(convs) <= limit:
            return ConversationPage(views, "")
        last = page[-1]
        cursor = ActivityCursor(last.last_activity_at, last.id)
        return ConversationPage(views, pagetoken.encode(caller, cursor))

    async def list_ids(self, caller: Caller, max_member_count: int, limit: int = 0) -> list[str]:
        if max_member_count < 0:
            raise InvalidArgument(
                "max_member_count must not be negative", "invalid_max_member_count"
            )
        if limit < 0:
            raise InvalidArgument("limit must not be negative", "invalid_limit")
        store = self.store(caller)
        ids = [m.conversation_id for m in await store.members.list_for_user(caller.user_id)]
        return await store.conversations.ids_of(ids, max_member_count, limit) if ids else []

    async def list_members(
        self, caller: Caller, conversation_id: str
    ) -> list[tuple[Member, UserProfile | None]]:
        await self.readable(caller, conversation_id)
        store = self.store(caller)
        members = await store.members.list_for_conversation(conversation_id)
        profiles = await store.users.get_many([m.user_id for m in members])
        return [(m, profiles.get(m.user_id)) for m in members]

    async def update(
        self,
        caller: Caller,
        conversation_id: str,
        *,
        title: str | None,
        description: str | None,
        topic: str | None,
    ) -> pb.Conversation:
        conv, member = await self.readable(caller, conversation_id)
        # Nobody edits a direct conversation, its admins included: say so first.
        if conv.kind == pb.CONVERSATION_KIND_DIRECT:
            raise PermissionDenied("a direct conversation has no title", "not_editable")
        access.require_conv_admin(caller, conv, member)
        access.require_writable(conv)
        _check_text_fields(title or "", description or "", topic or "")
        if title is None and description is None and topic is None:
            raise InvalidArgument("nothing to update", "nothing_to_update")
        changed = {"title": title, "description": description, "topic": topic}
        before: Fields = {k: getattr(conv, k) for k, v in changed.items() if v is not None}
        after: Fields = {k: v for k, v in changed.items() if v is not None}
        return await self._conversation_changed(
            caller,
            conv_id=conversation_id,
            member=member,
            claim=Claim(title=title, description=description, topic=topic),
            audited=(audit.CONVERSATION_UPDATED, before, after),
        )

    async def archive(self, caller: Caller, conversation_id: str) -> pb.Conversation:
        conv, member = await self.readable(caller, conversation_id)
        access.require_conv_admin(caller, conv, member)
        if conv.archived:
            return await self.view(caller, conv, member)
        return await self._conversation_changed(
            caller,
            conv_id=conversation_id,
            member=member,
            claim=Claim(archive=True),
            audited=(audit.CONVERSATION_ARCHIVED, {"archived": False}, {"archived": True}),
        )

    async def _conversation_changed(
        self,
        caller: Caller,
        *,
        conv_id: str,
        member: Member | None,
        claim: Claim,
        audited: tuple[str, Fields, Fields],
    ) -> pb.Conversation:
        async def body(t: Taken) -> None:
            action, before, after = audited
            await self.audit.in_unit(t, action, Target("conversation", conv_id), before, after)
            t.emit(
                events_pb2.ConversationEvent(
                    conversation_updated=events_pb2.ConversationUpdated(
                        conversation=convert.conversation(t.conversation, None)
                    )
                )
            )

        _, after = await self.unit.one(Change(caller, conv_id, claim, audited=True), body)
        return await self.view(caller, after, member)

    async def delete(self, caller: Caller, conversation_id: str) -> None:
        await self.readable(caller, conversation_id)
        if not access.tenant_admin(caller):
            raise PermissionDenied("only tenant admins delete conversations", "forbidden")

        async def body(t: Taken) -> None:
            await self.audit.in_unit(
                t,
                audit.CONVERSATION_DELETED,
                Target("conversation", conversation_id),
                {"deleted": False},
                {"deleted": True},
            )
            # Nothing reads the bot's retelling of a deleted conversation again.
            await t.store.bot_memory.forget_conversations([conversation_id])
            t.emit(
                events_pb2.ConversationEvent(conversation_deleted=events_pb2.ConversationDeleted())
            )

        claim = Claim(deleted_at=self.clock.now())
        await self.unit.one(Change(caller, conversation_id, claim, audited=True), body)

    async def browse(self, caller: Caller, query: str, limit: int) -> list[pb.Conversation]:
        if len(query) > MAX_TITLE_CHARS:
            raise InvalidArgument("query too long", "query_too_long")
        limit = MAX_PAGE if limit <= 0 else min(limit, MAX_PAGE)
        store = self.store(caller)
        convs = await store.conversations.browse_public(query.strip(), limit)
        members = {m.conversation_id: m for m in await store.members.list_for_user(caller.user_id)}
        return [convert.conversation(c, members.get(c.id)) for c in convs]

    async def join(self, caller: Caller, conversation_id: str) -> pb.Conversation:
        conv, member = await self.readable(caller, conversation_id)
        if member is not None:
            return await self.view(caller, conv, member)
        if not access.can_join(caller, conv):
            raise PermissionDenied("this conversation cannot be joined", "not_joinable")
        access.require_writable(conv)
        await self.remember_profile(caller)
        added = await self._add(caller, conv, [caller.user_id], pb.MEMBER_ROLE_MEMBER)
        store = self.store(caller)
        # A concurrent join of the same user may have added the membership first.
        member = added[0] if added else await store.members.get(conversation_id, caller.user_id)
        after = await store.conversations.get(conversation_id)
        return await self.view(caller, after or conv, member)

    async def add_members(
        self, caller: Caller, conversation_id: str, user_ids: list[str], role: int
    ) -> list[Member]:
        conv, member = await self.readable(caller, conversation_id)
        role = role or pb.MEMBER_ROLE_MEMBER
        if role not in _ROLES:
            raise InvalidArgument("unknown role", "invalid_role")
        # Direct and ai_assistant memberships are fixed for everyone, whatever their role.
        access.require_editable_kind(conv)
        if not access.can_add_members(caller, conv, member):
            raise PermissionDenied("you cannot add members here", "forbidden")
        access.require_writable(conv)
        wanted = sorted(set(user_ids))
        if not wanted:
            raise InvalidArgument("no user ids given", "no_members")
        if len(wanted) > MAX_MEMBERS_AT_CREATE:
            raise InvalidArgument("too many members", "too_many_members")
        _check_ids(wanted)
        if any(access.bot_user(u) for u in wanted):
            raise InvalidArgument("the bot cannot be added", "invalid_member_id")
        if role in (pb.MEMBER_ROLE_OWNER, pb.MEMBER_ROLE_ADMIN) and not access.can_set_role(
            caller, conv, member
        ):
            raise PermissionDenied("only owners grant admin roles", "forbidden")
        return await self._add(caller, conv, wanted, role)

    async def _add(
        self, caller: Caller, conv: Conversation, user_ids: list[str], role: int
    ) -> list[Member]:
        store = self.store(caller)
        present = {m.user_id for m in await store.members.get_many(conv.id, user_ids)}
        new = [u for u in user_ids if u not in present]
        if not new:
            return []
        # A banned user neither joins nor is added back, public channels included.
        sanctions.refuse_banned(await store.sanctions.bans_among(new, conv.id), self.clock.now())
        now = self.clock.now()

        # Someone adding others is an administrative act; joining is not.
        added_by_other = [u for u in new if u != caller.user_id]

        async def body(t: Taken) -> list[Member]:
            docs = await t.store.members.insert_members(conv.id, dict.fromkeys(new, role), now)
            if added_by_other:
                await self.audit.in_unit_all(
                    t,
                    [
                        (
                            audit.MEMBER_ADDED,
                            Target("user", u),
                            {},
                            {"role": role_name(role)},
                        )
                        for u in added_by_other
                    ],
                )
            t.emit(
                events_pb2.ConversationEvent(
                    members_added=events_pb2.MembersAdded(
                        members=[convert.member(d, None) for d in docs]
                    )
                )
            )
            return docs

        change = Change(caller, conv.id, Claim(member_delta=len(new)), audited=bool(added_by_other))
        try:
            docs, _ = await self.unit.one(change, body)
        except DuplicateKeyError as exc:
            # Someone added the same user meanwhile; the whole add is retried by the client.
            raise FailedPrecondition("membership changed, try again", "membership_changed") from exc
        return docs

    async def leave(self, caller: Caller, conversation_id: str) -> None:
        conv, member = await self.readable(caller, conversation_id)
        if member is None:
            raise PermissionDenied("not a member", "not_a_member")
        if conv.kind in access.FIXED_MEMBERSHIP_KINDS:
            raise PermissionDenied("this conversation cannot be left", "cannot_leave")
        # Leaving is a member change: an archived conversation keeps its members.
        access.require_writable(conv)
        await self._remove(caller, conv, member, left=True)

    async def remove_member(self, caller: Caller, conversation_id: str, user_id: str) -> None:
        conv, member = await self.readable(caller, conversation_id)
        if user_id == caller.user_id:
            await self.leave(caller, conversation_id)
            return
        target = await self.store(caller).members.get(conversation_id, user_id)
        if target is None:
            raise InvalidArgument("not a member of this conversation", "member_not_found")
        if not access.can_remove(caller, conv, member, target):
            raise PermissionDenied("you cannot remove this member", "forbidden")
        access.require_editable_kind(conv)
        access.require_writable(conv)
        await self._remove(caller, conv, target, left=False)

    async def _remove(
        self, caller: Caller, conv: Conversation, target: Member, *, left: bool
    ) -> None:
        user_id = target.user_id

        async def body(t: Taken) -> None:
            if (
                target.role == pb.MEMBER_ROLE_OWNER
                and t.conversation.member_count > 0
                and await t.store.members.count_owners(conv.id) <= 1
            ):
                raise FailedPrecondition("hand ownership to another member first", "last_owner")
            if not await t.store.members.remove(conv.id, user_id):
                raise FailedPrecondition("membership changed, try again", "membership_changed")
            if not left:
                await self.audit.in_unit(
                    t,
                    audit.MEMBER_REMOVED,
                    Target("user", user_id),
                    {"role": role_name(target.role)},
                    {},
                )
            t.emit(
                events_pb2.ConversationEvent(
                    member_removed=events_pb2.MemberRemoved(user_id=user_id, left=left)
                )
            )

        await self.unit.one(Change(caller, conv.id, Claim(member_delta=-1), audited=not left), body)

    async def set_role(
        self, caller: Caller, conversation_id: str, user_id: str, role: int
    ) -> Member:
        conv, member = await self.readable(caller, conversation_id)
        if role not in _ROLES:
            raise InvalidArgument("unknown role", "invalid_role")
        if not access.can_set_role(caller, conv, member):
            raise PermissionDenied("only owners change roles", "forbidden")
        access.require_editable_kind(conv)
        access.require_writable(conv)
        store = self.store(caller)
        target = await store.members.get(conversation_id, user_id)
        if target is None:
            raise InvalidArgument("not a member of this conversation", "member_not_found")
        if target.role == role:
            return target

        async def body(t: Taken) -> Member:
            if (
                target.role == pb.MEMBER_ROLE_OWNER
                and await t.store.members.count_owners(conversation_id) <= 1
            ):
                raise FailedPrecondition("a conversation keeps one owner", "last_owner")
            doc = await t.store.members.set_role(conversation_id, user_id, role)
            if doc is None:
                raise FailedPrecondition("membership changed, try again", "membership_changed")
            await self.audit.in_unit(
                t,
                audit.MEMBER_ROLE_CHANGED,
                Target("user", user_id),
                {"role": role_name(target.role)},
                {"role": role_name(role)},
            )
            t.emit(
                events_pb2.ConversationEvent(
                    member_role_changed=events_pb2.MemberRoleChanged(
                        member=convert.member(doc, None)
                    )
                )
            )
            return doc

        updated, _ = await self.unit.one(Change(caller, conversation_id, audited=True), body)
        return updated


def role_name(role: int) -> str:
    return (
        pb.MemberRole.Name(cast(pb.MemberRole.ValueType, role)).removeprefix("MEMBER_ROLE_").lower()
    )


def _check_text_fields(title: str, description: str, topic: str) -> None:
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidArgument(f"title exceeds {MAX_TITLE_CHARS} characters", "title_too_long")
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise InvalidArgument("description too long", "description_too_long")
    if len(topic) > MAX_TOPIC_CHARS:
        raise InvalidArgument("topic too long", "topic_too_long")
