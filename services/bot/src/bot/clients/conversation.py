"""The conversation service, as the bot uses it."""

from __future__ import annotations

import grpc

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import conversation_pb2_grpc as pb_grpc
from confab_core.grpcx.client import translate


class ConversationClient:
    """Calls act for whoever ``current_caller()`` is; the channel signs it into the
    service token (confab_core.servicetoken), the one way identity travels."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float = 10.0) -> None:
        self._stub = pb_grpc.ConversationServiceStub(channel)
        self._timeout = timeout

    async def get_conversation(self, conversation_id: str) -> pb.Conversation:
        try:
            resp = await self._stub.GetConversation(
                pb.GetConversationRequest(conversation_id=conversation_id),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        return resp.conversation

    async def messages_after(
        self, conversation_id: str, after_seq: int, limit: int
    ) -> list[pb.Message]:
        """Messages with seq > after_seq, oldest first."""
        return await self._list(
            pb.ListMessagesRequest(
                conversation_id=conversation_id, after_seq=after_seq, limit=limit
            )
        )

    async def messages_before(
        self, conversation_id: str, before_seq: int, limit: int
    ) -> list[pb.Message]:
        """The ``limit`` messages just before ``before_seq``, oldest first."""
        newest_first = await self._list(
            pb.ListMessagesRequest(
                conversation_id=conversation_id, before_seq=before_seq, limit=limit
            )
        )
        return newest_first[::-1]

    async def _list(self, request: pb.ListMessagesRequest) -> list[pb.Message]:
        try:
            resp = await self._stub.ListMessages(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        return list(resp.messages)

    async def send_message(
        self, conversation_id: str, client_msg_id: str, text: str, kind: pb.MessageKind.ValueType
    ) -> pb.Message:
        try:
            resp = await self._stub.SendMessage(
                pb.SendMessageRequest(
                    conversation_id=conversation_id,
                    client_msg_id=client_msg_id,
                    text=text,
                    kind=kind,
                ),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        return resp.message

    async def send_streamed(
        self,
        conversation_id: str,
        client_msg_id: str,
        text: str,
        *,
        message_id: str,
        stream_state: pb.StreamState.ValueType,
    ) -> pb.Message:
        """Stores a streamed reply under the id its stream events announced."""
        try:
            resp = await self._stub.SendMessage(
                pb.SendMessageRequest(
                    conversation_id=conversation_id,
                    client_msg_id=client_msg_id,
                    text=text,
                    kind=pb.MESSAGE_KIND_BOT,
                    message_id=message_id,
                    stream_state=stream_state,
                ),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        return resp.message
