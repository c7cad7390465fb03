"""JSON shapes of the support desk's auto-assignment endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from confab_core import limits
from gateway.schemas import Strict

AssignmentModeName = Literal["round_robin", "least_busy"]

MAX_CAPACITY = 1000


class AssignmentSettingsOut(BaseModel):
    """The tenant's auto-assignment; see docs/support.md, "Auto-assignment"."""

    enabled: bool
    mode: AssignmentModeName
    default_capacity: int = Field(description="Open tickets per agent, unless theirs differs")
    updated_at: datetime | None = Field(description="null until first changed")
    version: int = Field(description="0 for the defaults; +1 per update")


class AssignmentSettingsIn(Strict):
    """The fields to change; absent fields keep their value. Tenant admins only."""

    enabled: bool | None = None
    mode: AssignmentModeName | None = None
    default_capacity: int | None = Field(default=None, ge=1, le=MAX_CAPACITY)
    expected_version: int | None = Field(
        default=None,
        ge=0,
        le=limits.MAX_INT64,
        description="Apply only if the stored version is this (else 409)",
    )


class AgentOut(BaseModel):
    user_id: str
    name: str
    roles: list[str]
    online: bool = Field(description="Presence status online (not away, busy or offline)")
    capacity: int = Field(description="The limit that applies: their own or the default")
    custom_capacity: bool = Field(description="The agent has a limit of their own")
    open_tickets: int = Field(description="Assigned + waiting_on_user tickets")
    team_ids: list[str]
    last_assigned_at: datetime | None


class AgentListOut(BaseModel):
    agents: list[AgentOut]


class AgentCapacityIn(Strict):
    capacity: int | None = Field(
        ge=0,
        le=MAX_CAPACITY,
        description="0 keeps the agent out of auto-assignment; null restores the default",
    )
