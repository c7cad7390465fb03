"""gRPC servicer of BotDataService: translation only."""

from __future__ import annotations

from confab.conversation.v1 import botdata_pb2 as pb
from confab.conversation.v1 import botdata_pb2_grpc as pb_grpc
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from conversation.convert import ts
from conversation.handlers.botdata import BotDataHandler, Usage
from conversation.storage.botdata import StoredMemory


def memory_message(m: StoredMemory) -> pb.BotMemory:
    return pb.BotMemory(
        conversation_id=m.conversation_id,
        agent_id=m.agent_id,
        summary=m.summary,
        through_seq=m.through_seq,
        updated_at=ts(m.updated_at),
    )


def usage_message(u: Usage) -> pb.TenantUsage:
    return pb.TenantUsage(
        month=u.month,
        tokens_in=u.tokens_in,
        tokens_out=u.tokens_out,
        quota_tokens=u.quota_tokens,
        over_quota=u.over_quota,
        agents=[
            pb.AgentUsage(
                agent_id=a.agent_id, tokens_in=a.tokens_in, tokens_out=a.tokens_out, calls=a.calls
            )
            for a in u.agents
        ],
    )


def _purpose(value: pb.UsagePurpose.ValueType) -> str:
    try:
        return pb.UsagePurpose.Name(value).removeprefix("USAGE_PURPOSE_").lower()
    except ValueError:
        return "unspecified"


class BotDataServicer(pb_grpc.BotDataServiceServicer):
    def __init__(self, handler: BotDataHandler) -> None:
        self._h = handler

    async def GetMemory(self, request: pb.GetMemoryRequest, context: Ctx) -> pb.GetMemoryResponse:
        found = await self._h.memory(current_caller(), request.conversation_id, request.agent_id)
        return pb.GetMemoryResponse(memory=memory_message(found) if found else None)

    async def PutMemory(self, request: pb.PutMemoryRequest, context: Ctx) -> pb.PutMemoryResponse:
        m = request.memory
        stored, put = await self._h.put_memory(
            current_caller(), m.conversation_id, m.agent_id, m.summary, m.through_seq
        )
        return pb.PutMemoryResponse(memory=memory_message(stored), stored=put)

    async def GetCachedSummary(
        self, request: pb.GetCachedSummaryRequest, context: Ctx
    ) -> pb.GetCachedSummaryResponse:
        found = await self._h.cached_summary(
            current_caller(), request.conversation_id, request.last_seq
        )
        return pb.GetCachedSummaryResponse(found=found is not None, summary=found or "")

    async def PutCachedSummary(
        self, request: pb.PutCachedSummaryRequest, context: Ctx
    ) -> pb.PutCachedSummaryResponse:
        await self._h.put_cached_summary(
            current_caller(), request.conversation_id, request.last_seq, request.summary
        )
        return pb.PutCachedSummaryResponse()

    async def RecordUsage(
        self, request: pb.RecordUsageRequest, context: Ctx
    ) -> pb.RecordUsageResponse:
        recorded = await self._h.record_usage(
            current_caller(),
            call_id=request.call_id,
            agent_id=request.agent_id,
            conversation_id=request.conversation_id,
            purpose=_purpose(request.purpose),
            tokens_in=request.tokens_in,
            tokens_out=request.tokens_out,
        )
        return pb.RecordUsageResponse(usage=usage_message(recorded.usage))

    async def GetUsage(self, request: pb.GetUsageRequest, context: Ctx) -> pb.GetUsageResponse:
        usage = await self._h.usage(current_caller(), request.month)
        return pb.GetUsageResponse(usage=usage_message(usage))
