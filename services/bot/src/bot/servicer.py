"""gRPC servicer: translates requests to handler calls and results to protos."""

from __future__ import annotations

from bot.handlers.summaries import SummaryHandler
from confab.bot.v1 import bot_pb2 as pb
from confab.bot.v1 import bot_pb2_grpc as pb_grpc
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller


class BotServicer(pb_grpc.BotServiceServicer):
    def __init__(self, summaries: SummaryHandler) -> None:
        self._summaries = summaries

    async def SummarizeConversation(
        self, request: pb.SummarizeConversationRequest, context: Ctx
    ) -> pb.SummarizeConversationResponse:
        summary = await self._summaries.summarize(current_caller(), request.conversation_id)
        return pb.SummarizeConversationResponse(
            summary=summary.text, model_available=summary.model_available
        )
