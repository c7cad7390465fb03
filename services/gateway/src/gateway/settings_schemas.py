"""The tenant chat settings' JSON shapes (REST): /settings and its sections.

Lengths here only bound a request's size; the conversation service checks the
values and answers each rule with its stable code (docs/settings.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from gateway.schemas import Strict

Short = Annotated[str, StringConstraints(max_length=256)]
Url = Annotated[str, StringConstraints(max_length=2048)]
Text = Annotated[str, StringConstraints(max_length=16_000)]
Term = Annotated[str, StringConstraints(max_length=256)]
Terms = Annotated[list[Term], Field(max_length=200)]
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]


class Branding(Strict):
    display_name: Short = Field(default="", description="empty: the tenant's name")
    primary_color: Short = Field(default="", description='"#rrggbb"')
    accent_color: Short = Field(default="", description='"#rrggbb"')
    logo_url: Url = Field(default="", description="https only")
    welcome_message: Text = Field(
        default="", description="the widget's first line and a new support conversation's"
    )


class TopicRule(Strict):
    name: Short = ""
    phrases: Terms = Field(default_factory=list, description="case- and accent-insensitive")
    keywords: Terms = Field(default_factory=list, description="whole words")
    patterns: Terms = Field(
        default_factory=list, description="Python regular expressions, at most 200 characters"
    )


class Topics(Strict):
    allowed: list[TopicRule] = Field(
        default_factory=list, max_length=100, description="empty: every topic not forbidden"
    )
    forbidden: list[TopicRule] = Field(default_factory=list, max_length=100)
    model_check: bool = Field(
        default=False, description="after the rules, ask the agent's model too"
    )


class Agent(Strict):
    id: Short = Field(description="[a-z0-9-]{1,32}; its bot user is confab-bot:<id>")
    display_name: Short = ""
    avatar_url: Url = Field(default="", description="https only")
    role: Short = Field(description="assistant, support or pickable")
    model: Short = Field(default="", description="empty: the bot service's default")
    base_url: Url = Field(default="", description="one the service allows; empty: its default")
    system_prompt: Text = ""
    temperature: float = Field(default=0.0, description="0 to 2")
    token_budget: Int32 = Field(default=0, description="256 to 128000; 0: the default")
    max_reply_tokens: Int32 = Field(default=0, description="0: the default")
    topics: Topics = Field(default_factory=Topics, description="added to the tenant's")
    handoff_after_turns: Int32 = Field(default=0, description="0: the default")
    enabled: bool = True


class Agents(Strict):
    agents: list[Agent] = Field(default_factory=list, max_length=50)


class TicketCategories(Strict):
    ticket_categories: list[Short] = Field(default_factory=list, max_length=200)


RolePermissionMap = Annotated[
    dict[Short, Annotated[list[Short], Field(max_length=50)]], Field(max_length=20)
]


class RolePermissions(Strict):
    role_permissions: RolePermissionMap = Field(
        default_factory=dict,
        description="role (member, agent, tenant_admin) to its chat.* permissions; "
        "a role left out keeps its default",
    )


class AiQuota(Strict):
    monthly_tokens: int = Field(
        default=0, ge=-(2**62), le=2**62, description="model tokens a month (UTC); 0: unlimited"
    )


class FilePolicy(Strict):
    """docs/files.md#policy; 0 and empty mean the defaults (reads spell them out)."""

    max_size_bytes: int = Field(
        default=0, ge=-(2**62), le=2**62, description="largest upload; 0: 25 MiB; at most 5 GiB"
    )
    allowed_kinds: list[Short] = Field(
        default_factory=list,
        max_length=20,
        description="image, pdf, text, document, spreadsheet, presentation, archive, audio, "
        "video; empty: all",
    )
    svg_mode: Short = Field(default="", description='"block" (the default) or "download_only"')
    max_image_pixels: int = Field(
        default=0, ge=-(2**62), le=2**62, description="width x height; 0: 50 MP; 1 MP to 150 MP"
    )
    user_quota_bytes: int = Field(
        default=0, ge=-(2**62), le=2**62, description="live bytes per user; 0: 1 GiB"
    )
    tenant_quota_bytes: int = Field(
        default=0, ge=-(2**62), le=2**62, description="live bytes per tenant; 0: 50 GiB"
    )
    keep_image_metadata: bool = Field(
        default=False, description="keep EXIF (GPS...) in images; false strips it"
    )


class SettingsIn(Strict):
    """Every section; ``ai_quota`` left out keeps its value (only platform staff
    change it)."""

    branding: Branding = Field(default_factory=Branding)
    agents: list[Agent] = Field(default_factory=list, max_length=50)
    topics: Topics = Field(default_factory=Topics)
    ticket_categories: list[Short] = Field(default_factory=list, max_length=200)
    role_permissions: RolePermissionMap = Field(default_factory=dict)
    ai_quota: AiQuota | None = None
    files: FilePolicy | None = Field(default=None, description="left out: keeps its value")


class SettingsOut(Strict):
    branding: Branding
    agents: list[Agent]
    topics: Topics
    ticket_categories: list[str]
    role_permissions: dict[str, list[str]]
    ai_quota: AiQuota
    files: FilePolicy
    canned_replies_path: str = Field(description="where the desk's canned replies live")
    canned_reply_count: int
    version: int = Field(description="also the ETag; PUT sends it back in If-Match")
    updated_at: datetime | None
    updated_by: str


class PublicAgent(Strict):
    id: str
    display_name: str
    avatar_url: str
    role: str
    user_id: str = Field(description="the user its messages come from")


class PublicSettingsOut(Strict):
    branding: Branding
    agents: list[PublicAgent] = Field(description="the enabled agents")
    version: int
    files: FilePolicy = Field(description="so clients can refuse a file before uploading it")
