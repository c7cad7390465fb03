"""The conversation service's BotDataService: memory, summary cache, usage."""

from __future__ import annotations

import grpc

from confab.conversation.v1 import botdata_pb2 as pb
from confab.conversation.v1 import botdata_pb2_grpc as pb_grpc
from confab_core.grpcx.client import translate


class BotDataClient:
    """Acts as the current caller: the bot (a service caller in the tenant)."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float = 10.0) -> None:
        self._stub = pb_grpc.BotDataServiceStub(channel)
        self._timeout = timeout

    async def memory(self, conversation_id: str, agent_id: str) -> pb.BotMemory | None:
        try:
            resp = await self._stub.GetMemory(
                pb.GetMemoryRequest(conversation_id=conversation_id, agent_id=agent_id),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        return resp.memory if resp.HasField("memory") else None

    async def put_memory(
        self, conversation_id: str, agent_id: str, summary: str, through_seq: int
    ) -> bool:
        try:
            resp = await self._stub.PutMemory(
                pb.PutMemoryRequest(
                    memory=pb.BotMemory(
                        conversation_id=conversation_id,
                        agent_id=agent_id,
                        summary=summary,
                        through_seq=through_seq,
                    )
                ),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        return resp.stored

    async def cached_summary(self, conversation_id: str, last_seq: int) -> str | None:
        try:
            resp = await self._stub.GetCachedSummary(
                pb.GetCachedSummaryRequest(conversation_id=conversation_id, last_seq=last_seq),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        return resp.summary if resp.found else None

    async def put_cached_summary(self, conversation_id: str, last_seq: int, summary: str) -> None:
        try:
            await self._stub.PutCachedSummary(
                pb.PutCachedSummaryRequest(
                    conversation_id=conversation_id, last_seq=last_seq, summary=summary
                ),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc

    async def record_usage(self, request: pb.RecordUsageRequest) -> pb.TenantUsage:
        try:
            resp = await self._stub.RecordUsage(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        return resp.usage

    async def usage(self) -> pb.TenantUsage:
        try:
            resp = await self._stub.GetUsage(pb.GetUsageRequest(), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        return resp.usage
