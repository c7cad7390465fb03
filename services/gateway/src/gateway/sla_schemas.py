"""The SLA policy's JSON shapes (REST): GET/PUT /support/sla."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from gateway.schemas import Strict

Name = Annotated[str, StringConstraints(max_length=32)]
WallTime = Annotated[str, StringConstraints(max_length=5)]
Seconds = Annotated[int, Field(ge=-(2**62), le=2**62)]


class SlaTargets(Strict):
    """Business seconds per metric for one priority; 0 means no target."""

    priority: Name = Field(description="low, medium, high or urgent")
    first_response_seconds: Seconds = 0
    next_response_seconds: Seconds = 0
    resolution_seconds: Seconds = 0


class BusinessInterval(Strict):
    weekday: int = Field(ge=-(2**31), le=2**31 - 1, description="1 Monday .. 7 Sunday")
    start: WallTime = Field(description='wall clock "HH:MM" in the timezone')
    end: WallTime = Field(description='"HH:MM", up to "24:00"')


class BusinessHours(Strict):
    timezone: Annotated[str, StringConstraints(max_length=64)] = Field(
        default="UTC", description="IANA zone name, e.g. Europe/Berlin"
    )
    intervals: list[BusinessInterval] = Field(default_factory=list, max_length=56)
    holidays: list[Annotated[str, StringConstraints(max_length=10)]] = Field(
        default_factory=list, max_length=400, description="YYYY-MM-DD dates in the timezone"
    )


class SlaPolicyBody(Strict):
    targets: list[SlaTargets] = Field(default_factory=list, max_length=8)
    business_hours_only: bool = Field(
        default=False, description="clocks run only inside business_hours; else 24/7"
    )
    business_hours: BusinessHours = Field(default_factory=BusinessHours)
    warning_seconds: Seconds = Field(
        default=0, description="sla:warning this many business seconds before a due time; 0: none"
    )
    breach_actions: list[Name] = Field(
        default_factory=list,
        max_length=8,
        description="notify, escalate, reassign, raise_priority; applied in order at a breach",
    )


class SlaPolicyIn(SlaPolicyBody):
    """The whole policy (a replacement), with the version it was read at."""

    expected_version: int = Field(ge=0, le=2**62, description="the version read; 0 for none")


class SlaPolicyOut(SlaPolicyBody):
    updated_at: datetime | None = Field(description="null while none is set")
    version: int = Field(description="0 while none is set; +1 per replacement")
