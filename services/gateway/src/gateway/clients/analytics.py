"""The conversation service's AnalyticsService as the gateway calls it, and the
translation of its answers into the public JSON shapes and CSV."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import TYPE_CHECKING

from confab.conversation.v1 import analytics_pb2 as apb
from confab_core.identity import Caller
from gateway import analytics_schemas as s
from gateway.clients.peer import PeerClient
from gateway.ratelimit import Action, RateLimiter

if TYPE_CHECKING:
    from confab.conversation.v1.analytics_pb2_grpc import AnalyticsServiceAsyncStub

_BUCKETS = {"day": apb.ANALYTICS_BUCKET_DAY, "week": apb.ANALYTICS_BUCKET_WEEK}
_GROUPS = {
    "none": apb.ANALYTICS_GROUP_BY_NONE,
    "agent": apb.ANALYTICS_GROUP_BY_AGENT,
    "team": apb.ANALYTICS_GROUP_BY_TEAM,
    "category": apb.ANALYTICS_GROUP_BY_CATEGORY,
}
SUPPORT_COLUMNS = (
    "bucket_start",
    "group",
    "opened",
    "assigned",
    "resolved",
    "backlog",
    "first_response_count",
    "first_response_median_seconds",
    "first_response_p90_seconds",
    "resolution_count",
    "resolution_median_seconds",
    "resolution_p90_seconds",
    "sla_hit",
    "sla_missed",
    "sla_hit_rate",
    "sla_breaches",
)
CHAT_COLUMNS = ("series", "day", "conversation_id", "kind", "messages", "active_users")


class AnalyticsClient(PeerClient):
    def __init__(self, stub: AnalyticsServiceAsyncStub, timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub

    async def support(
        self, caller: Caller, request: apb.GetSupportAnalyticsRequest
    ) -> apb.GetSupportAnalyticsResponse:
        # A year of days of every agent is read and merged: more than a lookup.
        return await self._call(self._stub.GetSupportAnalytics, request, caller, 3.0)

    async def chat(
        self, caller: Caller, request: apb.GetChatUsageRequest
    ) -> apb.GetChatUsageResponse:
        return await self._call(self._stub.GetChatUsage, request, caller, 3.0)


def _durations(d: apb.DurationStats) -> s.DurationsOut:
    return s.DurationsOut(count=d.count, median_seconds=d.median_seconds, p90_seconds=d.p90_seconds)


def support_out(resp: apb.GetSupportAnalyticsResponse) -> s.SupportAnalyticsOut:
    return s.SupportAnalyticsOut(
        rows=[
            s.SupportRowOut(
                bucket_start=date.fromisoformat(r.bucket_start),
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
            for r in resp.rows
        ]
    )


def chat_out(resp: apb.GetChatUsageResponse) -> s.ChatUsageOut:
    return s.ChatUsageOut(
        days=[
            s.ChatDayOut(
                day=date.fromisoformat(d.day), messages=d.messages, active_users=d.active_users
            )
            for d in resp.days
        ],
        active_users=resp.active_users,
        busiest=[
            s.ChannelUsageOut(conversation_id=c.conversation_id, kind=c.kind, messages=c.messages)
            for c in resp.busiest
        ],
        busiest_days=[
            s.ChannelDayOut(
                day=date.fromisoformat(c.day),
                conversation_id=c.conversation_id,
                messages=c.messages,
            )
            for c in resp.busiest_days
        ],
    )


def _csv(header: tuple[str, ...], rows: list[list[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def support_csv(body: s.SupportAnalyticsOut) -> str:
    return _csv(
        SUPPORT_COLUMNS,
        [
            [
                r.bucket_start.isoformat(),
                r.group,
                r.opened,
                r.assigned,
                r.resolved,
                r.backlog,
                r.first_response.count,
                r.first_response.median_seconds,
                r.first_response.p90_seconds,
                r.resolution.count,
                r.resolution.median_seconds,
                r.resolution.p90_seconds,
                r.sla_hit,
                r.sla_missed,
                round(r.sla_hit_rate, 4),
                r.sla_breaches,
            ]
            for r in body.rows
        ],
    )


def chat_csv(body: s.ChatUsageOut) -> str:
    """One table for both series: the tenant's days (``day``) and the busiest
    conversations' days (``channel``), told apart by the first column."""
    kinds = {c.conversation_id: c.kind for c in body.busiest}
    rows: list[list[object]] = [
        ["day", d.day.isoformat(), "", "", d.messages, d.active_users] for d in body.days
    ]
    rows += [
        [
            "channel",
            c.day.isoformat(),
            c.conversation_id,
            kinds.get(c.conversation_id, ""),
            c.messages,
            "",
        ]
        for c in body.busiest_days
    ]
    return _csv(CHAT_COLUMNS, rows)


class AnalyticsOps:
    """REST calls of analytics: the rate limit, then translation."""

    def __init__(self, client: AnalyticsClient, limiter: RateLimiter) -> None:
        self._client = client
        self._limiter = limiter

    async def support(
        self, caller: Caller, first: date, last: date, bucket: s.BucketName, group_by: s.GroupName
    ) -> s.SupportAnalyticsOut:
        await self._limiter.check(caller, Action.ANALYTICS)
        resp = await self._client.support(
            caller,
            apb.GetSupportAnalyticsRequest(
                from_day=first.isoformat(),
                to_day=last.isoformat(),
                bucket=_BUCKETS[bucket],
                group_by=_GROUPS[group_by],
            ),
        )
        return support_out(resp)

    async def chat(self, caller: Caller, first: date, last: date, limit: int) -> s.ChatUsageOut:
        await self._limiter.check(caller, Action.ANALYTICS)
        resp = await self._client.chat(
            caller,
            apb.GetChatUsageRequest(
                from_day=first.isoformat(), to_day=last.isoformat(), limit=limit
            ),
        )
        return chat_out(resp)
