"""gRPC servicer: translates requests to handler calls and results to protos."""

from __future__ import annotations

from typing import Any

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import conversation_pb2_grpc as pb_grpc
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from conversation import convert
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler


def _file(request: pb.SendMessageRequest) -> dict[str, Any] | None:
    if not request.HasField("file"):
        return None
    f = request.file
    return {
        "url": f.url,
        "name": f.name,
        "content_type": f.content_type,
        "size_bytes": f.size_bytes,
        "file_id": f.file_id,
    }


class ConversationServicer(pb_grpc.ConversationServiceServicer):
    def __init__(self, conversations: ConversationHandler, messages: MessageHandler) -> None:
        self._c = conversations
        self._m = messages

    async def CreateConversation(
        self, request: pb.CreateConversationRequest, context: Ctx
    ) -> pb.CreateConversationResponse:
        ctx = (request.context.kind, request.context.id) if request.HasField("context") else None
        result = await self._c.create(
            current_caller(),
            kind=request.kind,
            title=request.title,
            description=request.description,
            member_ids=list(request.member_ids),
            context=ctx,
            agent_id=request.agent_id,
        )
        return pb.CreateConversationResponse(
            conversation=result.conversation, created=result.created
        )

    async def GetConversation(
        self, request: pb.GetConversationRequest, context: Ctx
    ) -> pb.GetConversationResponse:
        conv = await self._c.get(current_caller(), request.conversation_id)
        return pb.GetConversationResponse(conversation=conv)

    async def ListConversations(
        self, request: pb.ListConversationsRequest, context: Ctx
    ) -> pb.ListConversationsResponse:
        page = await self._c.list_for_caller(current_caller(), request.limit, request.page_token)
        return pb.ListConversationsResponse(
            conversations=page.conversations, next_page_token=page.next_page_token
        )

    async def ListConversationIds(
        self, request: pb.ListConversationIdsRequest, context: Ctx
    ) -> pb.ListConversationIdsResponse:
        ids = await self._c.list_ids(current_caller(), request.max_member_count, request.limit)
        return pb.ListConversationIdsResponse(conversation_ids=ids)

    async def ListMembers(
        self, request: pb.ListMembersRequest, context: Ctx
    ) -> pb.ListMembersResponse:
        rows = await self._c.list_members(current_caller(), request.conversation_id)
        return pb.ListMembersResponse(members=[convert.member(m, p) for m, p in rows])

    async def UpdateConversation(
        self, request: pb.UpdateConversationRequest, context: Ctx
    ) -> pb.UpdateConversationResponse:
        conv = await self._c.update(
            current_caller(),
            request.conversation_id,
            title=request.title if request.HasField("title") else None,
            description=request.description if request.HasField("description") else None,
            topic=request.topic if request.HasField("topic") else None,
        )
        return pb.UpdateConversationResponse(conversation=conv)

    async def ArchiveConversation(
        self, request: pb.ArchiveConversationRequest, context: Ctx
    ) -> pb.ArchiveConversationResponse:
        conv = await self._c.archive(current_caller(), request.conversation_id)
        return pb.ArchiveConversationResponse(conversation=conv)

    async def DeleteConversation(
        self, request: pb.DeleteConversationRequest, context: Ctx
    ) -> pb.DeleteConversationResponse:
        await self._c.delete(current_caller(), request.conversation_id)
        return pb.DeleteConversationResponse()

    async def BrowseChannels(
        self, request: pb.BrowseChannelsRequest, context: Ctx
    ) -> pb.BrowseChannelsResponse:
        convs = await self._c.browse(current_caller(), request.query, request.limit)
        return pb.BrowseChannelsResponse(conversations=convs)

    async def JoinConversation(
        self, request: pb.JoinConversationRequest, context: Ctx
    ) -> pb.JoinConversationResponse:
        conv = await self._c.join(current_caller(), request.conversation_id)
        return pb.JoinConversationResponse(conversation=conv)

    async def LeaveConversation(
        self, request: pb.LeaveConversationRequest, context: Ctx
    ) -> pb.LeaveConversationResponse:
        await self._c.leave(current_caller(), request.conversation_id)
        return pb.LeaveConversationResponse()

    async def AddMembers(
        self, request: pb.AddMembersRequest, context: Ctx
    ) -> pb.AddMembersResponse:
        added = await self._c.add_members(
            current_caller(), request.conversation_id, list(request.user_ids), request.role
        )
        return pb.AddMembersResponse(added=[convert.member(m, None) for m in added])

    async def RemoveMember(
        self, request: pb.RemoveMemberRequest, context: Ctx
    ) -> pb.RemoveMemberResponse:
        await self._c.remove_member(current_caller(), request.conversation_id, request.user_id)
        return pb.RemoveMemberResponse()

    async def UpdateMemberRole(
        self, request: pb.UpdateMemberRoleRequest, context: Ctx
    ) -> pb.UpdateMemberRoleResponse:
        doc = await self._c.set_role(
            current_caller(), request.conversation_id, request.user_id, request.role
        )
        return pb.UpdateMemberRoleResponse(member=convert.member(doc, None))

    async def SendMessage(
        self, request: pb.SendMessageRequest, context: Ctx
    ) -> pb.SendMessageResponse:
        sent = await self._m.send(
            current_caller(),
            conversation_id=request.conversation_id,
            client_msg_id=request.client_msg_id,
            text=request.text,
            kind=request.kind,
            thread_root_id=request.thread_root_id,
            file=_file(request),
            message_id=request.message_id,
            stream_state=request.stream_state,
        )
        return pb.SendMessageResponse(message=convert.message(sent.message), created=sent.created)

    async def ListMessages(
        self, request: pb.ListMessagesRequest, context: Ctx
    ) -> pb.ListMessagesResponse:
        page = await self._m.page(
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
        last, unread = await self._m.mark_read(
            current_caller(), conversation_id=request.conversation_id, seq=request.seq
        )
        return pb.MarkReadResponse(last_read_seq=last, unread_count=unread)

    async def EditMessage(
        self, request: pb.EditMessageRequest, context: Ctx
    ) -> pb.EditMessageResponse:
        doc = await self._m.edit(
            current_caller(),
            conversation_id=request.conversation_id,
            message_id=request.message_id,
            text=request.text,
        )
        return pb.EditMessageResponse(message=convert.message(doc))

    async def DeleteMessage(
        self, request: pb.DeleteMessageRequest, context: Ctx
    ) -> pb.DeleteMessageResponse:
        doc = await self._m.delete(
            current_caller(), conversation_id=request.conversation_id, message_id=request.message_id
        )
        return pb.DeleteMessageResponse(message=convert.message(doc))

    async def ToggleReaction(
        self, request: pb.ToggleReactionRequest, context: Ctx
    ) -> pb.ToggleReactionResponse:
        doc, added = await self._m.react(
            current_caller(),
            conversation_id=request.conversation_id,
            message_id=request.message_id,
            emoji=request.emoji,
        )
        return pb.ToggleReactionResponse(message=convert.message(doc), added=added)

    async def ListThread(
        self, request: pb.ListThreadRequest, context: Ctx
    ) -> pb.ListThreadResponse:
        root, page = await self._m.thread(
            current_caller(),
            conversation_id=request.conversation_id,
            root_message_id=request.root_message_id,
            after_seq=request.after_seq,
            limit=request.limit,
        )
        return pb.ListThreadResponse(
            root=convert.message(root),
            replies=[convert.message(m) for m in page.messages],
            has_more=page.has_more,
        )

    async def SearchMessages(
        self, request: pb.SearchMessagesRequest, context: Ctx
    ) -> pb.SearchMessagesResponse:
        docs = await self._m.search(
            current_caller(),
            query=request.query,
            conversation_id=request.conversation_id,
            limit=request.limit,
        )
        return pb.SearchMessagesResponse(messages=[convert.message(d) for d in docs])

    async def ListEvents(
        self, request: pb.ListEventsRequest, context: Ctx
    ) -> pb.ListEventsResponse:
        page = await self._m.events(
            current_caller(),
            conversation_id=request.conversation_id,
            after_event_seq=request.after_event_seq,
            limit=request.limit,
        )
        return pb.ListEventsResponse(
            events=page.events, has_more=page.has_more, resync_required=page.resync_required
        )
