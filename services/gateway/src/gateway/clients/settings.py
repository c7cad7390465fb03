"""The conversation service's SettingsService, as the gateway calls it, and the
translation between its messages and the public JSON shapes."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, cast

from confab.conversation.v1 import settings_pb2 as pb
from confab_core.identity import ROLE_SERVICE, Caller, agent_user_id
from gateway import settings_schemas as s
from gateway.clients.peer import PeerClient

if TYPE_CHECKING:
    from confab.conversation.v1.settings_pb2_grpc import SettingsServiceAsyncStub

# Who the gateway is when it loads a tenant's settings for its cache.
SETTINGS_USER_ID = "confab-gateway"

BRANDING = pb.SETTINGS_SECTION_BRANDING
AGENTS = pb.SETTINGS_SECTION_AGENTS
TOPICS = pb.SETTINGS_SECTION_TOPICS
TICKET_CATEGORIES = pb.SETTINGS_SECTION_TICKET_CATEGORIES
ROLE_PERMISSIONS = pb.SETTINGS_SECTION_ROLE_PERMISSIONS
AI_QUOTA = pb.SETTINGS_SECTION_AI_QUOTA
FILES = pb.SETTINGS_SECTION_FILES
ALL_BUT_QUOTA = [BRANDING, AGENTS, TOPICS, TICKET_CATEGORIES, ROLE_PERMISSIONS]

_ROLES = {
    pb.AGENT_ROLE_ASSISTANT: "assistant",
    pb.AGENT_ROLE_SUPPORT: "support",
    pb.AGENT_ROLE_PICKABLE: "pickable",
}
_ROLE_VALUES = {name: value for value, name in _ROLES.items()}


class SettingsClient(PeerClient):
    def __init__(self, stub: SettingsServiceAsyncStub, timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub

    async def get(self, caller: Caller, tenant_id: str = "") -> pb.TenantSettings:
        """``tenant_id``: platform staff only, the tenant they act in."""
        request = pb.GetSettingsRequest(tenant_id=tenant_id)
        return (await self._call(self._stub.GetSettings, request, caller)).settings

    async def update(
        self,
        caller: Caller,
        settings: pb.TenantSettings,
        sections: list[pb.SettingsSection.ValueType],
        expected_version: int,
        tenant_id: str = "",
    ) -> pb.TenantSettings:
        request = pb.UpdateSettingsRequest(
            settings=settings,
            sections=sections,
            expected_version=expected_version,
            tenant_id=tenant_id,
        )
        return (await self._call(self._stub.UpdateSettings, request, caller)).settings

    async def public(self, caller: Caller) -> pb.PublicSettings:
        request = pb.GetPublicSettingsRequest()
        return (await self._call(self._stub.GetPublicSettings, request, caller)).settings

    async def load(self, tenant_id: str) -> pb.TenantSettings:
        """The whole document, as the service role in the tenant: the settings
        cache's loader (confab_core.tenant_settings)."""
        caller = Caller(tenant_id, SETTINGS_USER_ID, frozenset({ROLE_SERVICE}))
        request = pb.GetServiceSettingsRequest()
        return (await self._call(self._stub.GetServiceSettings, request, caller)).settings


def public_of(settings: pb.TenantSettings) -> pb.PublicSettings:
    """The public part of a whole document (what GetPublicSettings answers)."""
    return pb.PublicSettings(
        branding=settings.branding,
        agents=[
            pb.PublicAgent(
                id=a.id,
                display_name=a.display_name,
                avatar_url=a.avatar_url,
                role=a.role,
                user_id=agent_user_id(a.id),
            )
            for a in settings.agents
            if a.enabled
        ],
        version=settings.version,
        files=settings.files,
    )


def branding_out(b: pb.Branding) -> s.Branding:
    return s.Branding(
        display_name=b.display_name,
        primary_color=b.primary_color,
        accent_color=b.accent_color,
        logo_url=b.logo_url,
        welcome_message=b.welcome_message,
    )


def topics_out(t: pb.Topics) -> s.Topics:
    def rule(r: pb.TopicRule) -> s.TopicRule:
        return s.TopicRule(
            name=r.name,
            phrases=list(r.phrases),
            keywords=list(r.keywords),
            patterns=list(r.patterns),
        )

    return s.Topics(
        allowed=[rule(r) for r in t.allowed],
        forbidden=[rule(r) for r in t.forbidden],
        model_check=t.model_check,
    )


def agents_out(agents: list[pb.BotAgent]) -> list[s.Agent]:
    return [
        s.Agent(
            id=a.id,
            display_name=a.display_name,
            avatar_url=a.avatar_url,
            role=_ROLES.get(a.role, ""),
            model=a.model,
            base_url=a.base_url,
            system_prompt=a.system_prompt,
            temperature=a.temperature,
            token_budget=a.token_budget,
            max_reply_tokens=a.max_reply_tokens,
            topics=topics_out(a.topics),
            handoff_after_turns=a.handoff_after_turns,
            enabled=a.enabled,
        )
        for a in agents
    ]


def role_permissions_out(settings: pb.TenantSettings) -> dict[str, list[str]]:
    return {r.role: list(r.permissions) for r in settings.role_permissions}


def settings_out(p: pb.TenantSettings) -> s.SettingsOut:
    return s.SettingsOut(
        branding=branding_out(p.branding),
        agents=agents_out(list(p.agents)),
        topics=topics_out(p.topics),
        ticket_categories=list(p.ticket_categories),
        role_permissions=role_permissions_out(p),
        ai_quota=s.AiQuota(monthly_tokens=p.ai_quota.monthly_tokens),
        files=files_out(p.files),
        canned_replies_path=p.canned_replies_path,
        canned_reply_count=p.canned_reply_count,
        version=p.version,
        updated_at=p.updated_at.ToDatetime(tzinfo=UTC) if p.HasField("updated_at") else None,
        updated_by=p.updated_by,
    )


def public_out(p: pb.PublicSettings) -> s.PublicSettingsOut:
    return s.PublicSettingsOut(
        branding=branding_out(p.branding),
        agents=[
            s.PublicAgent(
                id=a.id,
                display_name=a.display_name,
                avatar_url=a.avatar_url,
                role=_ROLES.get(a.role, ""),
                user_id=a.user_id,
            )
            for a in p.agents
        ],
        version=p.version,
        files=files_out(p.files),
    )


_SVG_MODES = {pb.SVG_MODE_BLOCK: "block", pb.SVG_MODE_DOWNLOAD_ONLY: "download_only"}
_SVG_MODE_VALUES = {name: value for value, name in _SVG_MODES.items()}


def files_out(f: pb.FilePolicy) -> s.FilePolicy:
    return s.FilePolicy(
        max_size_bytes=f.max_size_bytes,
        allowed_kinds=list(f.allowed_kinds),
        svg_mode=_SVG_MODES.get(f.svg_mode, ""),
        max_image_pixels=f.max_image_pixels,
        user_quota_bytes=f.user_quota_bytes,
        tenant_quota_bytes=f.tenant_quota_bytes,
        keep_image_metadata=f.keep_image_metadata,
    )


def files_in(f: s.FilePolicy) -> pb.FilePolicy:
    # An unknown mode becomes a value the service refuses with invalid_svg_mode.
    mode = _SVG_MODE_VALUES.get(f.svg_mode, pb.SVG_MODE_UNSPECIFIED if not f.svg_mode else 99)
    return pb.FilePolicy(
        max_size_bytes=f.max_size_bytes,
        allowed_kinds=f.allowed_kinds,
        svg_mode=cast(pb.SvgMode.ValueType, mode),
        max_image_pixels=f.max_image_pixels,
        user_quota_bytes=f.user_quota_bytes,
        tenant_quota_bytes=f.tenant_quota_bytes,
        keep_image_metadata=f.keep_image_metadata,
    )


def branding_in(b: s.Branding) -> pb.Branding:
    return pb.Branding(
        display_name=b.display_name,
        primary_color=b.primary_color,
        accent_color=b.accent_color,
        logo_url=b.logo_url,
        welcome_message=b.welcome_message,
    )


def topics_in(t: s.Topics) -> pb.Topics:
    def rule(r: s.TopicRule) -> pb.TopicRule:
        return pb.TopicRule(
            name=r.name, phrases=r.phrases, keywords=r.keywords, patterns=r.patterns
        )

    return pb.Topics(
        allowed=[rule(r) for r in t.allowed],
        forbidden=[rule(r) for r in t.forbidden],
        model_check=t.model_check,
    )


def agents_in(agents: list[s.Agent]) -> list[pb.BotAgent]:
    # An unknown role becomes UNSPECIFIED, which the service refuses with
    # invalid_agent_role.
    return [
        pb.BotAgent(
            id=a.id,
            display_name=a.display_name,
            avatar_url=a.avatar_url,
            role=_ROLE_VALUES.get(a.role, pb.AGENT_ROLE_UNSPECIFIED),
            model=a.model,
            base_url=a.base_url,
            system_prompt=a.system_prompt,
            temperature=a.temperature,
            token_budget=a.token_budget,
            max_reply_tokens=a.max_reply_tokens,
            topics=topics_in(a.topics),
            handoff_after_turns=a.handoff_after_turns,
            enabled=a.enabled,
        )
        for a in agents
    ]


def role_permissions_in(roles: dict[str, list[str]]) -> list[pb.RolePermissions]:
    return [pb.RolePermissions(role=role, permissions=perms) for role, perms in roles.items()]


def settings_in(body: s.SettingsIn) -> pb.TenantSettings:
    return pb.TenantSettings(
        branding=branding_in(body.branding),
        agents=agents_in(body.agents),
        topics=topics_in(body.topics),
        ticket_categories=body.ticket_categories,
        role_permissions=role_permissions_in(body.role_permissions),
        ai_quota=pb.AiQuota(monthly_tokens=body.ai_quota.monthly_tokens if body.ai_quota else 0),
        files=files_in(body.files) if body.files is not None else None,
    )
