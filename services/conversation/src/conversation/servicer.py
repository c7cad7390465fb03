"""gRPC servicer: translates requests to handler calls and results to protos."""

from __future__ import annotations

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import conversation_pb2_grpc as pb_grpc
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from conversation import convert
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler


class ConversationServicer(pb_grpc.ConversationServiceServicer):
    def __init__(self, conversations: ConversationHandler, messages: MessageHandler) -> None:
        self._conversations = conversations
        self._messages = messages

    async def CreateConversation(
        self, request: pb.CreateConversationRequest, context: Ctx
    ) -> pb.CreateConversationResponse:
        ctx = (request.context.kind, request.context.id) if request.HasField("context") else None
        result = await self._conversations.create(
            current_caller(),
            kind=request.kind,
            title=request.title,
            description=request.description,
            member_ids=list(request.member_ids),
            context=ctx,
        )
        return pb.CreateConversationResponse(
            conversation=convert.conversation(result.conversation, result.member),
            created=result.created,
        )

    async def GetConversation(
        self, request: pb.GetConversationRequest, context: Ctx
    ) -> pb.GetConversationResponse:
        conv, member = await self._conversations.get(current_caller(), request.conversation_id)
        return pb.GetConversationResponse(conversation=convert.conversation(conv, member))

    async def ListConversations(
        self, request: pb.ListConversationsRequest, context: Ctx
    ) -> pb.ListConversationsResponse:
        rows = await self._conversations.list_for_caller(current_caller(), request.limit)
        return pb.ListConversationsResponse(
            conversations=[convert.conversation(c, m) for c, m in rows]
        )

    async def ListMembers(
        self, request: pb.ListMembersRequest, context: Ctx
    ) -> pb.ListMembersResponse:
        rows = await self._conversations.list_members(current_caller(), request.conversation_id)
        return pb.ListMembersResponse(members=[convert.member(m, p) for m, p in rows])

    async def SendMessage(
        self, request: pb.SendMessageRequest, context: Ctx
    ) -> pb.SendMessageResponse:
        sent = await self._messages.send(
            current_caller(),
            conversation_id=request.conversation_id,
            client_msg_id=request.client_msg_id,
            text=request.text,
            kind=request.kind,
            thread_root_id=request.thread_root_id,
        )
        return pb.SendMessageResponse(message=convert.message(sent.message), created=sent.created)

    async def ListMessages(
        self, request: pb.ListMessagesRequest, context: Ctx
    ) -> pb.ListMessagesResponse:
        page = await self._messages.page(
            current_caller(),
            conversation_id=request.conversation_id,
            after_seq=request.after_seq,
            before_seq=request.before_seq,
            limit=request.limit,
        )
        return pb.ListMessagesResponse(
            messages=[convert.message(m) for m in page.messages], has_more=page.has_more
        )

    async def MarkRead(self, request: pb.MarkReadRequest, context: Ctx) -> pb.MarkReadResponse:
        last, unread = await self._messages.mark_read(
            current_caller(), conversation_id=request.conversation_id, seq=request.seq
        )
        return pb.MarkReadResponse(last_read_seq=last, unread_count=unread)
