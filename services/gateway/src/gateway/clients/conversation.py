"""The conversation service, as the gateway calls it: one typed method per RPC."""

from __future__ import annotations

from typing import TYPE_CHECKING

from confab.conversation.v1 import conversation_pb2 as cpb
from confab_core.identity import Caller
from gateway.clients.peer import PeerClient

if TYPE_CHECKING:
    from confab.conversation.v1.conversation_pb2_grpc import ConversationServiceAsyncStub


class ConversationClient(PeerClient):
    def __init__(self, stub: ConversationServiceAsyncStub, timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub

    async def add_members(
        self, caller: Caller, request: cpb.AddMembersRequest
    ) -> cpb.AddMembersResponse:
        return await self._call(self._stub.AddMembers, request, caller)

    async def archive_conversation(
        self, caller: Caller, request: cpb.ArchiveConversationRequest
    ) -> cpb.ArchiveConversationResponse:
        return await self._call(self._stub.ArchiveConversation, request, caller)

    async def browse_channels(
        self, caller: Caller, request: cpb.BrowseChannelsRequest
    ) -> cpb.BrowseChannelsResponse:
        return await self._call(self._stub.BrowseChannels, request, caller)

    async def create_conversation(
        self, caller: Caller, request: cpb.CreateConversationRequest
    ) -> cpb.CreateConversationResponse:
        return await self._call(self._stub.CreateConversation, request, caller)

    async def delete_conversation(
        self, caller: Caller, request: cpb.DeleteConversationRequest
    ) -> cpb.DeleteConversationResponse:
        return await self._call(self._stub.DeleteConversation, request, caller)

    async def delete_message(
        self, caller: Caller, request: cpb.DeleteMessageRequest
    ) -> cpb.DeleteMessageResponse:
        return await self._call(self._stub.DeleteMessage, request, caller)

    async def edit_message(
        self, caller: Caller, request: cpb.EditMessageRequest
    ) -> cpb.EditMessageResponse:
        return await self._call(self._stub.EditMessage, request, caller)

    async def get_conversation(
        self, caller: Caller, request: cpb.GetConversationRequest
    ) -> cpb.GetConversationResponse:
        return await self._call(self._stub.GetConversation, request, caller)

    async def join_conversation(
        self, caller: Caller, request: cpb.JoinConversationRequest
    ) -> cpb.JoinConversationResponse:
        return await self._call(self._stub.JoinConversation, request, caller)

    async def leave_conversation(
        self, caller: Caller, request: cpb.LeaveConversationRequest
    ) -> cpb.LeaveConversationResponse:
        return await self._call(self._stub.LeaveConversation, request, caller)

    async def list_conversation_ids(
        self, caller: Caller, request: cpb.ListConversationIdsRequest
    ) -> cpb.ListConversationIdsResponse:
        return await self._call(self._stub.ListConversationIds, request, caller)

    async def list_conversations(
        self, caller: Caller, request: cpb.ListConversationsRequest
    ) -> cpb.ListConversationsResponse:
        return await self._call(self._stub.ListConversations, request, caller)

    async def list_events(
        self, caller: Caller, request: cpb.ListEventsRequest
    ) -> cpb.ListEventsResponse:
        return await self._call(self._stub.ListEvents, request, caller)

    async def list_members(
        self, caller: Caller, request: cpb.ListMembersRequest
    ) -> cpb.ListMembersResponse:
        return await self._call(self._stub.ListMembers, request, caller)

    async def list_messages(
        self, caller: Caller, request: cpb.ListMessagesRequest
    ) -> cpb.ListMessagesResponse:
        return await self._call(self._stub.ListMessages, request, caller)

    async def list_thread(
        self, caller: Caller, request: cpb.ListThreadRequest
    ) -> cpb.ListThreadResponse:
        return await self._call(self._stub.ListThread, request, caller)

    async def mark_read(self, caller: Caller, request: cpb.MarkReadRequest) -> cpb.MarkReadResponse:
        return await self._call(self._stub.MarkRead, request, caller)

    async def remove_member(
        self, caller: Caller, request: cpb.RemoveMemberRequest
    ) -> cpb.RemoveMemberResponse:
        return await self._call(self._stub.RemoveMember, request, caller)

    async def search_messages(
        self, caller: Caller, request: cpb.SearchMessagesRequest
    ) -> cpb.SearchMessagesResponse:
        return await self._call(self._stub.SearchMessages, request, caller)

    async def send_message(
        self, caller: Caller, request: cpb.SendMessageRequest
    ) -> cpb.SendMessageResponse:
        return await self._call(self._stub.SendMessage, request, caller)

    async def toggle_reaction(
        self, caller: Caller, request: cpb.ToggleReactionRequest
    ) -> cpb.ToggleReactionResponse:
        return await self._call(self._stub.ToggleReaction, request, caller)

    async def update_conversation(
        self, caller: Caller, request: cpb.UpdateConversationRequest
    ) -> cpb.UpdateConversationResponse:
        return await self._call(self._stub.UpdateConversation, request, caller)

    async def update_member_role(
        self, caller: Caller, request: cpb.UpdateMemberRoleRequest
    ) -> cpb.UpdateMemberRoleResponse:
        return await self._call(self._stub.UpdateMemberRole, request, caller)
