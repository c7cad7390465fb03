"""gRPC servicer of AnalyticsService: translation only."""

from __future__ import annotations

from confab.conversation.v1 import analytics_pb2 as pb
from confab.conversation.v1 import analytics_pb2_grpc as pb_grpc
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from conversation.handlers.analytics import AnalyticsHandler, Durations, SupportRow

_BUCKETS = {
    pb.ANALYTICS_BUCKET_UNSPECIFIED: "day",
    pb.ANALYTICS_BUCKET_DAY: "day",
    pb.ANALYTICS_BUCKET_WEEK: "week",
}
_GROUPS = {
    pb.ANALYTICS_GROUP_BY_UNSPECIFIED: "none",
    pb.ANALYTICS_GROUP_BY_NONE: "none",
    pb.ANALYTICS_GROUP_BY_AGENT: "agent",
    pb.ANALYTICS_GROUP_BY_TEAM: "team",
    pb.ANALYTICS_GROUP_BY_CATEGORY: "category",
}


def _durations(d: Durations) -> pb.DurationStats:
    return pb.DurationStats(count=d.count, median_seconds=d.median, p90_seconds=d.p90)


def support_row(r: SupportRow) -> pb.SupportRow:
    return pb.SupportRow(
        bucket_start=r.bucket_start.isoformat(),
        group=r.group,
        opened=r.opened,
        assigned=r.assigned,
        resolved=r.resolved,
        backlog=r.backlog,
        first_response=_durations(r.first_response),
        resolution=_durations(r.resolution),
        sla_hit=r.sla_hit,
        sla_missed=r.sla_missed,
        sla_hit_rate=r.sla_hit_rate,
        sla_breaches=r.sla_breaches,
    )


class AnalyticsServicer(pb_grpc.AnalyticsServiceServicer):
    def __init__(self, analytics: AnalyticsHandler) -> None:
        self._a = analytics

    async def GetSupportAnalytics(
        self, request: pb.GetSupportAnalyticsRequest, context: Ctx
    ) -> pb.GetSupportAnalyticsResponse:
        # An unknown enum value becomes "", which the handler refuses by name.
        rows = await self._a.support(
            current_caller(),
            request.from_day,
            request.to_day,
            _BUCKETS.get(request.bucket, ""),
            _GROUPS.get(request.group_by, ""),
        )
        return pb.GetSupportAnalyticsResponse(rows=[support_row(r) for r in rows])

    async def GetChatUsage(
        self, request: pb.GetChatUsageRequest, context: Ctx
    ) -> pb.GetChatUsageResponse:
        caller = current_caller()
        usage = await self._a.chat(caller, request.from_day, request.to_day, request.limit)
        return pb.GetChatUsageResponse(
            days=[
                pb.ChatDay(day=d.day.isoformat(), messages=d.messages, active_users=d.active_users)
                for d in usage.days
            ],
            active_users=usage.active_users,
            busiest=[
                pb.ChannelUsage(conversation_id=c.conversation_id, kind=c.kind, messages=c.messages)
                for c in usage.busiest
            ],
            busiest_days=[
                pb.ChannelDay(
                    day=c.day.isoformat(), conversation_id=c.conversation_id, messages=c.messages
                )
                for c in usage.busiest_days
            ],
        )
