"""The calls REST routes and socket events share, so both speak one way.

Translation only: the rules live in the services behind these calls.
"""

from __future__ import annotations

from typing import cast

from confab.bot.v1 import bot_pb2
from confab.conversation.v1 import conversation_pb2 as cpb
from confab.notification.v1 import notification_pb2 as npb
from confab.presence.v1 import presence_pb2 as ppb
from confab_core.identity import Caller
from confab_core.ids import new_id
from gateway import convert, schemas
from gateway.clients import call
from gateway.clients.backends import Backends
from gateway.ratelimit import SendLimiter


class ChatOps:
    def __init__(self, backends: Backends, limiter: SendLimiter) -> None:
        self._b = backends
        self._limiter = limiter

    @property
    def _t(self) -> float:
        return self._b.timeout

    async def create_conversation(
        self, caller: Caller, body: schemas.CreateConversationIn
    ) -> schemas.CreateConversationOut:
        req = cpb.CreateConversationRequest(
            kind=cast(cpb.ConversationKind.ValueType, convert.KIND_BY_NAME[body.kind]),
            title=body.title,
            description=body.description,
            member_ids=body.member_ids,
            context=cpb.ContextLink(kind=body.context.kind, id=body.context.id)
            if body.context
            else None,
        )
        resp = await call(self._b.conversation.CreateConversation, req, caller, self._t)
        return schemas.CreateConversationOut(
            conversation=convert.conversation(resp.conversation), created=resp.created
        )

    async def get_conversation(
        self, caller: Caller, conversation_id: str
    ) -> schemas.ConversationOut:
        req = cpb.GetConversationRequest(conversation_id=conversation_id)
        resp = await call(self._b.conversation.GetConversation, req, caller, self._t)
        return convert.conversation(resp.conversation)

    async def list_conversations(self, caller: Caller, limit: int) -> list[schemas.ConversationOut]:
        req = cpb.ListConversationsRequest(limit=limit)
        resp = await call(self._b.conversation.ListConversations, req, caller, self._t)
        return [convert.conversation(c) for c in resp.conversations]

    async def list_members(self, caller: Caller, conversation_id: str) -> list[schemas.MemberOut]:
        req = cpb.ListMembersRequest(conversation_id=conversation_id)
        resp = await call(self._b.conversation.ListMembers, req, caller, self._t)
        return [convert.member(m) for m in resp.members]

    async def send_message(
        self, caller: Caller, conversation_id: str, body: schemas.SendMessageIn
    ) -> schemas.SendMessageOut:
        await self._limiter.check(caller)
        req = cpb.SendMessageRequest(
            conversation_id=conversation_id,
            client_msg_id=body.client_msg_id or new_id(),
            text=body.text,
            kind=cast(cpb.MessageKind.ValueType, convert.MESSAGE_KIND_BY_NAME[body.kind]),
            thread_root_id=body.thread_root_id or "",
        )
        resp = await call(self._b.conversation.SendMessage, req, caller, self._t)
        return schemas.SendMessageOut(message=convert.message(resp.message), created=resp.created)

    async def list_messages(
        self, caller: Caller, conversation_id: str, after_seq: int, before_seq: int, limit: int
    ) -> schemas.MessagePage:
        req = cpb.ListMessagesRequest(
            conversation_id=conversation_id, after_seq=after_seq, before_seq=before_seq, limit=limit
        )
        resp = await call(self._b.conversation.ListMessages, req, caller, self._t)
        return schemas.MessagePage(
            messages=[convert.message(m) for m in resp.messages], has_more=resp.has_more
        )

    async def mark_read(
        self, caller: Caller, conversation_id: str, seq: int
    ) -> schemas.ReadStateOut:
        req = cpb.MarkReadRequest(conversation_id=conversation_id, seq=seq)
        resp = await call(self._b.conversation.MarkRead, req, caller, self._t)
        return schemas.ReadStateOut(
            last_read_seq=resp.last_read_seq, unread_count=resp.unread_count
        )

    async def presence(self, caller: Caller, user_ids: list[str]) -> list[schemas.PresenceOut]:
        req = ppb.GetPresenceRequest(user_ids=user_ids)
        resp = await call(self._b.presence.GetPresence, req, caller, self._t)
        return [convert.presence(p) for p in resp.presences]

    async def connect(self, caller: Caller, connection_id: str, gateway_id: str) -> None:
        req = ppb.ConnectRequest(connection_id=connection_id, gateway_id=gateway_id)
        await call(self._b.presence.Connect, req, caller, self._t)

    async def disconnect(self, caller: Caller, connection_id: str) -> None:
        req = ppb.DisconnectRequest(connection_id=connection_id)
        await call(self._b.presence.Disconnect, req, caller, self._t)

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
        await self._b.presence.Heartbeat(req, timeout=self._t)

    async def notifications(self, caller: Caller, limit: int) -> list[schemas.NotificationOut]:
        req = npb.ListNotificationsRequest(limit=limit)
        resp = await call(self._b.notification.ListNotifications, req, caller, self._t)
        return [convert.notification(n) for n in resp.notifications]

    async def summarize(self, caller: Caller, conversation_id: str) -> schemas.SummaryOut:
        req = bot_pb2.SummarizeConversationRequest(conversation_id=conversation_id)
        # Summaries wait on a model; give them more than a plain read.
        resp = await call(self._b.bot.SummarizeConversation, req, caller, self._t * 6)
        return convert.summary(resp)
