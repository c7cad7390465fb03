"""Support and chat analytics' JSON shapes (REST)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel

BucketName = Literal["day", "week"]
GroupName = Literal["none", "agent", "team", "category"]
FormatName = Literal["json", "csv"]


class DurationsOut(BaseModel):
    count: int
    median_seconds: float
    p90_seconds: float


class SupportRowOut(BaseModel):
    bucket_start: date
    # "" is the whole tenant when not grouped, and "no agent/team/category" when grouped.
    group: str
    opened: int
    assigned: int
    resolved: int
    backlog: int
    first_response: DurationsOut
    resolution: DurationsOut
    sla_hit: int
    sla_missed: int
    sla_hit_rate: float
    sla_breaches: int


class SupportAnalyticsOut(BaseModel):
    rows: list[SupportRowOut]


class ChatDayOut(BaseModel):
    day: date
    messages: int
    active_users: int


class ChannelUsageOut(BaseModel):
    conversation_id: str
    kind: str
    messages: int


class ChannelDayOut(BaseModel):
    day: date
    conversation_id: str
    messages: int


class ChatUsageOut(BaseModel):
    days: list[ChatDayOut]
    active_users: int
    busiest: list[ChannelUsageOut]
    busiest_days: list[ChannelDayOut]
