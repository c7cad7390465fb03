"""BotStreamService: stopping a streamed reply, and its text so far.

Both act for the calling member: the conversation service, asked as them,
decides whether they can read the conversation (another tenant's, or one they
are not in, is NOT_FOUND), so the bot never judges membership itself.
"""

from __future__ import annotations

from bot.clients.conversation import ConversationClient
from bot.streaming import ReplyStreamer, StreamPublisher
from confab.bot.v1 import stream_pb2 as pb
from confab.bot.v1 import stream_pb2_grpc as pb_grpc
from confab_core.errors import InvalidArgument
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from confab_core.limits import MAX_ID_CHARS


def _ids(conversation_id: str, message_id: str) -> None:
    for name, value in (("conversation_id", conversation_id), ("message_id", message_id)):
        if not value:
            raise InvalidArgument(f"{name} is required", f"{name}_required")
        if len(value) > MAX_ID_CHARS:
            raise InvalidArgument(f"{name} is too long", f"invalid_{name}")


class BotStreamServicer(pb_grpc.BotStreamServiceServicer):
    def __init__(
        self,
        conversations: ConversationClient,
        streamer: ReplyStreamer,
        publisher: StreamPublisher,
    ) -> None:
        self._conversations = conversations
        self._streamer = streamer
        self._publisher = publisher

    async def CancelStream(
        self, request: pb.CancelStreamRequest, context: Ctx
    ) -> pb.CancelStreamResponse:
        caller = current_caller()
        _ids(request.conversation_id, request.message_id)
        await self._conversations.get_conversation(request.conversation_id)
        self._streamer.cancel_local(caller.tenant_id, request.conversation_id, request.message_id)
        # Every bot pod reads the control topic; the one running the stream stops it.
        await self._publisher.control(
            pb.StreamControl(
                tenant_id=caller.tenant_id,
                conversation_id=request.conversation_id,
                message_id=request.message_id,
                cancel=pb.StreamCancel(user_id=caller.user_id),
            )
        )
        return pb.CancelStreamResponse()

    async def GetStream(self, request: pb.GetStreamRequest, context: Ctx) -> pb.GetStreamResponse:
        caller = current_caller()
        _ids(request.conversation_id, request.message_id)
        await self._conversations.get_conversation(request.conversation_id)
        local = self._streamer.text_so_far(
            caller.tenant_id, request.conversation_id, request.message_id
        )
        if local is not None:
            return pb.GetStreamResponse(found=True, text=local[0], index=local[1])
        await self._publisher.control(
            pb.StreamControl(
                tenant_id=caller.tenant_id,
                conversation_id=request.conversation_id,
                message_id=request.message_id,
                snapshot_request=pb.StreamSnapshotRequest(),
            )
        )
        return pb.GetStreamResponse(found=False, requested=True)
