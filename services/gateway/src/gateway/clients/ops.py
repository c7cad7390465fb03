"""The calls REST routes and socket events share, so both speak one way.

Translation only: the rules live in the services behind these calls, reached
through the typed per-peer clients in ``Backends``.
"""

from __future__ import annotations

from typing import cast

from google.protobuf.message import DecodeError

from confab.bot.v1 import bot_pb2
from confab.conversation.v1 import conversation_pb2 as cpb
from confab.conversation.v1 import events_pb2 as cev
from confab.conversation.v1 import policy_pb2 as ppol
from confab.notification.v1 import notification_pb2 as npb
from confab.presence.v1 import presence_pb2 as ppb
from confab_core.errors import ConfabError
from confab_core.identity import ROLE_SERVICE, Caller
from confab_core.ids import new_id
from gateway import convert, schemas
from gateway.clients import policy
from gateway.clients.backends import Backends
from gateway.ratelimit import Action, RateLimiter


def _role(name: str | None) -> cpb.MemberRole.ValueType:
    if name is None:
        return cpb.MEMBER_ROLE_UNSPECIFIED
    return cpb.MemberRole.Value(f"MEMBER_ROLE_{name.upper()}")


class ChatOps:
    def __init__(self, backends: Backends, limiter: RateLimiter) -> None:
        self._b = backends
        self._limiter = limiter

    @property
    def limiter(self) -> RateLimiter:
        return self._limiter

    async def create_conversation(
        self, caller: Caller, body: schemas.CreateConversationIn
    ) -> schemas.CreateConversationOut:
        await self._limiter.check(caller, Action.CONVERSATION_CREATE)
        req = cpb.CreateConversationRequest(
            kind=cast(cpb.ConversationKind.ValueType, convert.KIND_BY_NAME[body.kind]),
            title=body.title,
            description=body.description,
            member_ids=body.member_ids,
            context=cpb.ContextLink(kind=body.context.kind, id=body.context.id)
            if body.context
            else None,
            agent_id=body.agent_id or "",
        )
        resp = await self._b.conversation.create_conversation(caller, req)
        return schemas.CreateConversationOut(
            conversation=convert.conversation(resp.conversation), created=resp.created
        )

    async def get_conversation(
        self, caller: Caller, conversation_id: str
    ) -> schemas.ConversationOut:
        req = cpb.GetConversationRequest(conversation_id=conversation_id)
        resp = await self._b.conversation.get_conversation(caller, req)
        return convert.conversation(resp.conversation)

    async def list_conversations(
        self, caller: Caller, limit: int, cursor: str
    ) -> schemas.ConversationPageOut:
        req = cpb.ListConversationsRequest(limit=limit, page_token=cursor)
        resp = await self._b.conversation.list_conversations(caller, req)
        return schemas.ConversationPageOut(
            conversations=[convert.conversation(c) for c in resp.conversations],
            next_cursor=resp.next_page_token or None,
        )

    async def list_members(self, caller: Caller, conversation_id: str) -> list[schemas.MemberOut]:
        req = cpb.ListMembersRequest(conversation_id=conversation_id)
        resp = await self._b.conversation.list_members(caller, req)
        return [convert.member(m) for m in resp.members]

    async def send_message(
        self, caller: Caller, conversation_id: str, body: schemas.SendMessageIn
    ) -> schemas.SendMessageOut:
        await self._limiter.check(caller, Action.SEND)
        req = cpb.SendMessageRequest(
            conversation_id=conversation_id,
            client_msg_id=body.client_msg_id or new_id(),
            text=body.text,
            kind=cast(cpb.MessageKind.ValueType, convert.MESSAGE_KIND_BY_NAME[body.kind]),
            thread_root_id=body.thread_root_id or "",
            file=convert.file_in(body.file) if body.file else None,
        )
        resp = await self._b.conversation.send_message(caller, req)
        return schemas.SendMessageOut(message=convert.message(resp.message), created=resp.created)

    async def list_messages(
        self, caller: Caller, conversation_id: str, after_seq: int, before_seq: int, limit: int
    ) -> schemas.MessagePage:
        req = cpb.ListMessagesRequest(
            conversation_id=conversation_id, after_seq=after_seq, before_seq=before_seq, limit=limit
        )
        resp = await self._b.conversation.list_messages(caller, req)
        return schemas.MessagePage(
            messages=[convert.message(m) for m in resp.messages], has_more=resp.has_more
        )

    async def mark_read(
        self, caller: Caller, conversation_id: str, seq: int
    ) -> schemas.ReadStateOut:
        req = cpb.MarkReadRequest(conversation_id=conversation_id, seq=seq)
        resp = await self._b.conversation.mark_read(caller, req)
        return schemas.ReadStateOut(
            last_read_seq=resp.last_read_seq, unread_count=resp.unread_count
        )

    async def update_conversation(
        self, caller: Caller, conversation_id: str, body: schemas.UpdateConversationIn
    ) -> schemas.ConversationOut:
        req = cpb.UpdateConversationRequest(conversation_id=conversation_id)
        # Only the fields given are set: an unset optional keeps its value.
        if body.title is not None:
            req.title = body.title
        if body.description is not None:
            req.description = body.description
        if body.topic is not None:
            req.topic = body.topic
        resp = await self._b.conversation.update_conversation(caller, req)
        return convert.conversation(resp.conversation)

    async def archive_conversation(
        self, caller: Caller, conversation_id: str
    ) -> schemas.ConversationOut:
        req = cpb.ArchiveConversationRequest(conversation_id=conversation_id)
        resp = await self._b.conversation.archive_conversation(caller, req)
        return convert.conversation(resp.conversation)

    async def delete_conversation(self, caller: Caller, conversation_id: str) -> None:
        req = cpb.DeleteConversationRequest(conversation_id=conversation_id)
        await self._b.conversation.delete_conversation(caller, req)

    async def browse_channels(
        self, caller: Caller, query: str, limit: int
    ) -> list[schemas.ConversationOut]:
        req = cpb.BrowseChannelsRequest(query=query, limit=limit)
        resp = await self._b.conversation.browse_channels(caller, req)
        return [convert.conversation(c) for c in resp.conversations]

    async def join_conversation(
        self, caller: Caller, conversation_id: str
    ) -> schemas.ConversationOut:
        req = cpb.JoinConversationRequest(conversation_id=conversation_id)
        resp = await self._b.conversation.join_conversation(caller, req)
        return convert.conversation(resp.conversation)

    async def leave_conversation(self, caller: Caller, conversation_id: str) -> None:
        req = cpb.LeaveConversationRequest(conversation_id=conversation_id)
        await self._b.conversation.leave_conversation(caller, req)

    async def add_members(
        self, caller: Caller, conversation_id: str, body: schemas.AddMembersIn
    ) -> schemas.MembersAddedOut:
        await self._limiter.check(caller, Action.MEMBER_ADD)
        req = cpb.AddMembersRequest(
            conversation_id=conversation_id,
            user_ids=body.user_ids,
            role=_role(body.role),
        )
        resp = await self._b.conversation.add_members(caller, req)
        return schemas.MembersAddedOut(added=[convert.member(m) for m in resp.added])

    async def remove_member(self, caller: Caller, conversation_id: str, user_id: str) -> None:
        req = cpb.RemoveMemberRequest(conversation_id=conversation_id, user_id=user_id)
        await self._b.conversation.remove_member(caller, req)

    async def update_member_role(
        self, caller: Caller, conversation_id: str, user_id: str, role: schemas.MemberRoleName
    ) -> schemas.MemberOut:
        req = cpb.UpdateMemberRoleRequest(
            conversation_id=conversation_id, user_id=user_id, role=_role(role)
        )
        resp = await self._b.conversation.update_member_role(caller, req)
        return convert.member(resp.member)

    async def edit_message(
        self, caller: Caller, conversation_id: str, message_id: str, text: str
    ) -> schemas.MessageOut:
        await self._limiter.check(caller, Action.SEND)
        req = cpb.EditMessageRequest(
            conversation_id=conversation_id, message_id=message_id, text=text
        )
        resp = await self._b.conversation.edit_message(caller, req)
        return convert.message(resp.message)

    async def delete_message(
        self, caller: Caller, conversation_id: str, message_id: str
    ) -> schemas.MessageOut:
        req = cpb.DeleteMessageRequest(conversation_id=conversation_id, message_id=message_id)
        resp = await self._b.conversation.delete_message(caller, req)
        return convert.message(resp.message)

    async def toggle_reaction(
        self, caller: Caller, conversation_id: str, message_id: str, emoji: str
    ) -> schemas.ToggleReactionOut:
        await self._limiter.check(caller, Action.SEND)
        req = cpb.ToggleReactionRequest(
            conversation_id=conversation_id, message_id=message_id, emoji=emoji
        )
        resp = await self._b.conversation.toggle_reaction(caller, req)
        return schemas.ToggleReactionOut(message=convert.message(resp.message), added=resp.added)

    async def list_thread(
        self, caller: Caller, conversation_id: str, root_id: str, after_seq: int, limit: int
    ) -> schemas.ThreadPage:
        req = cpb.ListThreadRequest(
            conversation_id=conversation_id,
            root_message_id=root_id,
            after_seq=after_seq,
            limit=limit,
        )
        resp = await self._b.conversation.list_thread(caller, req)
        return schemas.ThreadPage(
            root=convert.message(resp.root),
            replies=[convert.message(m) for m in resp.replies],
            has_more=resp.has_more,
        )

    async def search_messages(
        self, caller: Caller, query: str, conversation_id: str | None, limit: int
    ) -> schemas.SearchOut:
        await self._limiter.check(caller, Action.SEARCH)
        req = cpb.SearchMessagesRequest(
            query=query, conversation_id=conversation_id or "", limit=limit
        )
        resp = await self._b.conversation.search_messages(caller, req)
        return schemas.SearchOut(messages=[convert.message(m) for m in resp.messages])

    async def get_policy(self, caller: Caller) -> schemas.PolicyOut:
        await self._limiter.check(caller, Action.POLICY)
        resp = await self._b.policy.get_policy(caller, ppol.GetPolicyRequest())
        return policy.policy_out(resp.policy, dict(resp.pii_counts))

    async def update_policy(self, caller: Caller, body: schemas.PolicyPatchIn) -> schemas.PolicyOut:
        await self._limiter.check(caller, Action.POLICY)
        resp = await self._b.policy.update_policy(caller, policy.update_request(body))
        return policy.policy_out(resp.policy)

    async def list_events(
        self, caller: Caller, conversation_id: str, after_event_seq: int, limit: int
    ) -> schemas.EventPage:
        req = cpb.ListEventsRequest(
            conversation_id=conversation_id, after_event_seq=after_event_seq, limit=limit
        )
        resp = await self._b.conversation.list_events(caller, req)
        events: list[schemas.EventOut] = []
        for raw in resp.events:
            try:
                event = cev.ConversationEvent.FromString(raw)
            except DecodeError:
                raise ConfabError("unreadable event from upstream", "bad_upstream_event") from None
            if event.tenant_id and event.tenant_id != caller.tenant_id:
                # Never expected; a cheap guard so a storage bug cannot leak.
                raise ConfabError("event of another tenant from upstream", "bad_upstream_event")
            out = convert.event(event)
            if out is not None:
                events.append(out)
        return schemas.EventPage(
            events=events, has_more=resp.has_more, resync_required=resp.resync_required
        )

    async def presence(self, caller: Caller, user_ids: list[str]) -> list[schemas.PresenceOut]:
        req = ppb.GetPresenceRequest(user_ids=user_ids)
        resp = await self._b.presence.get_presence(caller, req)
        return [convert.presence(p) for p in resp.presences]

    async def set_presence(
        self, caller: Caller, body: schemas.SetPresenceIn
    ) -> schemas.PresenceOut:
        await self._limiter.check(caller, Action.PRESENCE)
        req = ppb.SetStatusRequest(
            status=cast(ppb.PresenceStatus.ValueType, convert.PRESENCE_STATUS_BY_NAME[body.status])
        )
        if body.custom_status is not None:
            req.custom_status = body.custom_status
        if body.custom_status_expires_at is not None:
            req.custom_status_expires_at.FromDatetime(body.custom_status_expires_at)
        resp = await self._b.presence.set_status(caller, req)
        return convert.presence(resp.presence)

    async def set_typing(self, caller: Caller, conversation_id: str, typing: bool) -> None:
        await self._limiter.check(caller, Action.TYPING)
        req = ppb.SetTypingRequest(conversation_id=conversation_id, typing=typing)
        await self._b.presence.set_typing(caller, req)

    async def conversation_ids(
        self, caller: Caller, *, limit: int = 0, max_members: int = 0
    ) -> list[str]:
        """The caller's conversations, most recent first, without computing counts."""
        req = cpb.ListConversationIdsRequest(limit=limit, max_member_count=max_members)
        resp = await self._b.conversation.list_conversation_ids(caller, req)
        return list(resp.conversation_ids)

    async def conversations_of(self, tenant_id: str, user_id: str, max_members: int) -> list[str]:
        """The user's conversations of at most ``max_members`` (0: any), for fan-out of
        their presence: no user token here, so the gateway asks with the service
        role, which the conversation service grants only to a verified service token."""
        caller = Caller(tenant_id=tenant_id, user_id=user_id, roles=frozenset({ROLE_SERVICE}))
        return await self.conversation_ids(caller, max_members=max_members)

    async def admit(self, caller: Caller) -> None:
        """Counts a socket connect against the caller's connect budget."""
        await self._limiter.check(caller, Action.CONNECT)

    async def connect(self, caller: Caller, connection_id: str, gateway_id: str) -> None:
        req = ppb.ConnectRequest(connection_id=connection_id, gateway_id=gateway_id)
        await self._b.presence.connect(caller, req)

    async def disconnect(self, caller: Caller, connection_id: str) -> None:
        req = ppb.DisconnectRequest(connection_id=connection_id)
        await self._b.presence.disconnect(caller, req)

    async def heartbeat(self, gateway_id: str, connections: list[tuple[Caller, str]]) -> None:
        req = ppb.HeartbeatRequest(
            gateway_id=gateway_id,
            connections=[
                ppb.HeartbeatConnection(
                    tenant_id=c.tenant_id, user_id=c.user_id, connection_id=conn_id
                )
                for c, conn_id in connections
            ],
        )
        # As the gateway itself: the entries name users of many tenants.
        await self._b.presence.heartbeat(None, req)

    async def notifications(self, caller: Caller, limit: int) -> list[schemas.NotificationOut]:
        req = npb.ListNotificationsRequest(limit=limit)
        resp = await self._b.notification.list_notifications(caller, req)
        return [convert.notification(n) for n in resp.notifications]

    async def summarize(self, caller: Caller, conversation_id: str) -> schemas.SummaryOut:
        await self._limiter.check(caller, Action.SUMMARY)
        req = bot_pb2.SummarizeConversationRequest(conversation_id=conversation_id)
        # Summaries wait on a model; give them more than a plain read.
        resp = await self._b.bot.summarize_conversation(caller, req, timeout_factor=6)
        return convert.summary(resp)
