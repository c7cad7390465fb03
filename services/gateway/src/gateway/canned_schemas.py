"""The public JSON shapes of canned replies and the support profile."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, StringConstraints, model_validator

from confab_core import limits
from gateway.schemas import Id, MessageOut, Strict

CannedScopeName = Literal["shared", "personal"]
# The service owns the rules (invalid_shortcode, unknown_variable, ...); these
# bounds only keep oversized input away from it.
Shortcode = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Body = Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_TEXT_CHARS)]


class CannedReplyIn(Strict):
    scope: CannedScopeName
    shortcode: Shortcode
    body: Body


class CannedReplyPatchIn(Strict):
    shortcode: Shortcode | None = None
    body: Body | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if self.shortcode is None and self.body is None:
            raise ValueError("give at least one of shortcode, body")
        return self


class CannedReplyOut(BaseModel):
    id: str
    scope: CannedScopeName
    owner_id: str | None = Field(description="The owner of a personal reply; null when shared")
    shortcode: str
    body: str = Field(description="As written, with its {{variables}}; never render it as HTML")
    created_at: datetime
    updated_at: datetime


class CannedReplyPageOut(BaseModel):
    replies: list[CannedReplyOut]
    next_cursor: str | None


class SendCannedReplyIn(Strict):
    # Made by the client so a retried send is stored once; the gateway makes one
    # when absent, which gives up that guarantee.
    client_msg_id: Id | None = None


class RenderedOut(BaseModel):
    text: str = Field(description="The body with its variables filled; never render it as HTML")


class SendCannedReplyOut(BaseModel):
    message: MessageOut
    created: bool


class SupportProfileIn(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class SupportProfileOut(BaseModel):
    name: str = Field(description="What {{tenant.name}} renders to; the tenant id until set")
    updated_at: datetime | None
