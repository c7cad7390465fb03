"""Public JSON shapes of the AI routes (model usage against the monthly quota)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AgentUsageOut(BaseModel):
    agent_id: str = Field(description='The bot agent ("" for the default assistant)')
    tokens_in: int
    tokens_out: int
    calls: int


class UsageOut(BaseModel):
    month: str = Field(description="YYYY-MM, UTC")
    tokens_in: int
    tokens_out: int
    quota_tokens: int = Field(description="The tenant's monthly quota; 0: unlimited")
    over_quota: bool
    agents: list[AgentUsageOut]
