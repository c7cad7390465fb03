"""The bot service, as the gateway calls it: one typed method per RPC."""

from __future__ import annotations

from typing import TYPE_CHECKING

from confab.bot.v1 import bot_pb2 as bpb
from confab.bot.v1 import stream_pb2 as spb
from confab_core.identity import Caller
from gateway.clients.peer import PeerClient

if TYPE_CHECKING:
    from confab.bot.v1.bot_pb2_grpc import BotServiceAsyncStub
    from confab.bot.v1.stream_pb2_grpc import BotStreamServiceAsyncStub


class BotClient(PeerClient):
    def __init__(self, stub: BotServiceAsyncStub, timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub

    async def summarize_conversation(
        self, caller: Caller, request: bpb.SummarizeConversationRequest, timeout_factor: float = 1.0
    ) -> bpb.SummarizeConversationResponse:
        return await self._call(self._stub.SummarizeConversation, request, caller, timeout_factor)


class BotStreamClient(PeerClient):
    def __init__(self, stub: BotStreamServiceAsyncStub, timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub

    async def cancel_stream(
        self, caller: Caller, request: spb.CancelStreamRequest
    ) -> spb.CancelStreamResponse:
        return await self._call(self._stub.CancelStream, request, caller)

    async def get_stream(
        self, caller: Caller, request: spb.GetStreamRequest
    ) -> spb.GetStreamResponse:
        return await self._call(self._stub.GetStream, request, caller)
