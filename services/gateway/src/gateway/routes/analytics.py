"""Support and chat analytics for tenant admins, as JSON or CSV."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, Response

from gateway import analytics_schemas as s
from gateway import schemas
from gateway.clients.analytics import AnalyticsOps, chat_csv, support_csv
from gateway.deps import CallerDep, ContextDep

router = APIRouter(prefix="/analytics", tags=["analytics"])

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": schemas.ErrorOut},
    403: {"model": schemas.ErrorOut},
    422: {"model": schemas.ErrorOut},
    429: {"model": schemas.ErrorOut},
}
CSV = "text/csv"
First = Annotated[date, Query(alias="from", description="First day, inclusive (UTC)")]
Last = Annotated[date, Query(alias="to", description="Last day, inclusive (UTC)")]
Format = Annotated[
    s.FormatName | None, Query(alias="format", description="csv, or send Accept: text/csv")
]
Accept = Annotated[str, Header(include_in_schema=False)]


def get_analytics(ctx: ContextDep) -> AnalyticsOps:
    return AnalyticsOps(ctx.backends.analytics, ctx.ops.limiter)


AnalyticsDep = Annotated[AnalyticsOps, Depends(get_analytics)]


def _wants_csv(fmt: s.FormatName | None, accept: str) -> bool:
    if fmt is not None:
        return fmt == "csv"
    return CSV in accept.lower()


def _csv(body: str, name: str) -> Response:
    return Response(
        body,
        media_type=f"{CSV}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get(
    "/support",
    response_model=s.SupportAnalyticsOut,
    responses={**ERRORS, 200: {"content": {CSV: {}}}},
)
async def support_analytics(
    caller: CallerDep,
    ops: AnalyticsDep,
    first: First,
    last: Last,
    bucket: s.BucketName = "day",
    group_by: s.GroupName = "none",
    fmt: Format = None,
    accept: Accept = "",
) -> Response:
    """Tickets opened, assigned, resolved, backlog, first response and resolution
    times (median, p90), SLA hits and misses, per day or week (Monday first,
    UTC), overall or per agent, team or category. Tenant admins only (403
    ``forbidden``); at most 366 days (422 ``invalid_range``)."""
    body = await ops.support(caller, first, last, bucket, group_by)
    if _wants_csv(fmt, accept):
        return _csv(support_csv(body), "support-analytics")
    return JSONResponse(body.model_dump(mode="json"))


@router.get(
    "/chat", response_model=s.ChatUsageOut, responses={**ERRORS, 200: {"content": {CSV: {}}}}
)
async def chat_usage(
    caller: CallerDep,
    ops: AnalyticsDep,
    first: First,
    last: Last,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    fmt: Format = None,
    accept: Accept = "",
) -> Response:
    """Messages per day, active users (distinct senders) per day and over the
    range, and the ``limit`` busiest conversations with their messages per day.
    Tenant admins only; at most 366 days."""
    body = await ops.chat(caller, first, last, limit)
    if _wants_csv(fmt, accept):
        return _csv(chat_csv(body), "chat-usage")
    return JSONResponse(body.model_dump(mode="json"))
