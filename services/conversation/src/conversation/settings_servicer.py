"""gRPC servicer of SettingsService: translation only."""

from __future__ import annotations

from confab.conversation.v1 import settings_pb2 as pb
from confab.conversation.v1 import settings_pb2_grpc as pb_grpc
from confab_core.errors import InvalidArgument
from confab_core.grpcx import Ctx
from confab_core.identity import Caller, agent_user_id, current_caller
from conversation.convert import ts
from conversation.handlers import filepolicy, platformaccess
from conversation.handlers.tenant_settings import (
    ASSISTANT,
    CANNED_REPLIES_PATH,
    PICKABLE,
    SECTION_VALUES,
    SUPPORT,
    SettingsHandler,
    SettingsView,
)
from conversation.storage.settings import (
    AgentRecord,
    BrandingRecord,
    FilesRecord,
    SettingsRecord,
    TopicRuleRecord,
    TopicsRecord,
)

_ROLES = {
    pb.AGENT_ROLE_ASSISTANT: ASSISTANT,
    pb.AGENT_ROLE_SUPPORT: SUPPORT,
    pb.AGENT_ROLE_PICKABLE: PICKABLE,
}
_ROLE_VALUES = {name: value for value, name in _ROLES.items()}
_SECTIONS = {value: name for name, value in SECTION_VALUES.items()}


def branding_message(b: BrandingRecord) -> pb.Branding:
    return pb.Branding(
        display_name=b.display_name,
        primary_color=b.primary_color,
        accent_color=b.accent_color,
        logo_url=b.logo_url,
        welcome_message=b.welcome_message,
    )


def _topics_message(t: TopicsRecord) -> pb.Topics:
    def rule(r: TopicRuleRecord) -> pb.TopicRule:
        return pb.TopicRule(
            name=r.name, phrases=r.phrases, keywords=r.keywords, patterns=r.patterns
        )

    return pb.Topics(
        allowed=[rule(r) for r in t.allowed],
        forbidden=[rule(r) for r in t.forbidden],
        model_check=t.model_check,
    )


def _agent_message(a: AgentRecord) -> pb.BotAgent:
    return pb.BotAgent(
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
        topics=_topics_message(a.topics),
        handoff_after_turns=a.handoff_after_turns,
        enabled=a.enabled,
    )


def settings_message(view: SettingsView) -> pb.TenantSettings:
    s = view.settings
    return pb.TenantSettings(
        branding=branding_message(s.branding),
        agents=[_agent_message(a) for a in s.agents],
        topics=_topics_message(s.topics),
        ticket_categories=s.ticket_categories,
        role_permissions=[
            pb.RolePermissions(role=role, permissions=perms) for role, perms in s.role_permissions
        ],
        ai_quota=pb.AiQuota(monthly_tokens=s.ai_quota_monthly_tokens),
        files=files_message(s.files),
        canned_replies_path=CANNED_REPLIES_PATH,
        canned_reply_count=view.canned_reply_count,
        version=s.version,
        updated_at=ts(s.updated_at),
        updated_by=s.updated_by,
    )


def public_message(s: SettingsRecord) -> pb.PublicSettings:
    return pb.PublicSettings(
        branding=branding_message(s.branding),
        agents=[
            pb.PublicAgent(
                id=a.id,
                display_name=a.display_name,
                avatar_url=a.avatar_url,
                role=_ROLE_VALUES.get(a.role, pb.AGENT_ROLE_UNSPECIFIED),
                user_id=agent_user_id(a.id),
            )
            for a in s.agents
            if a.enabled
        ],
        version=s.version,
        files=files_message(s.files),
    )


_SVG_MODES = {
    filepolicy.SVG_BLOCK: pb.SVG_MODE_BLOCK,
    filepolicy.SVG_DOWNLOAD_ONLY: pb.SVG_MODE_DOWNLOAD_ONLY,
}
_SVG_NAMES = {v: k for k, v in _SVG_MODES.items()}


def files_message(f: FilesRecord) -> pb.FilePolicy:
    return pb.FilePolicy(
        max_size_bytes=f.max_size_bytes,
        allowed_kinds=f.allowed_kinds,
        svg_mode=_SVG_MODES.get(f.svg_mode, pb.SVG_MODE_UNSPECIFIED),
        max_image_pixels=f.max_image_pixels,
        user_quota_bytes=f.user_quota_bytes,
        tenant_quota_bytes=f.tenant_quota_bytes,
        keep_image_metadata=f.keep_image_metadata,
    )


def _files(f: pb.FilePolicy) -> FilesRecord:
    return FilesRecord(
        max_size_bytes=f.max_size_bytes,
        allowed_kinds=tuple(f.allowed_kinds),
        # An unknown value is named by validation; unspecified is the default.
        svg_mode=_SVG_NAMES.get(f.svg_mode, "" if f.svg_mode == 0 else "?"),
        max_image_pixels=f.max_image_pixels,
        user_quota_bytes=f.user_quota_bytes,
        tenant_quota_bytes=f.tenant_quota_bytes,
        keep_image_metadata=f.keep_image_metadata,
    )


def _topics(t: pb.Topics) -> TopicsRecord:
    def rule(r: pb.TopicRule) -> TopicRuleRecord:
        return TopicRuleRecord(
            name=r.name,
            phrases=tuple(r.phrases),
            keywords=tuple(r.keywords),
            patterns=tuple(r.patterns),
        )

    return TopicsRecord(
        allowed=tuple(rule(r) for r in t.allowed),
        forbidden=tuple(rule(r) for r in t.forbidden),
        model_check=t.model_check,
    )


def draft(s: pb.TenantSettings) -> SettingsRecord:
    """What an update asks for; unknown enum values become "", which validation names."""
    b = s.branding
    return SettingsRecord(
        branding=BrandingRecord(
            display_name=b.display_name,
            primary_color=b.primary_color,
            accent_color=b.accent_color,
            logo_url=b.logo_url,
            welcome_message=b.welcome_message,
        ),
        agents=tuple(
            AgentRecord(
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
                topics=_topics(a.topics),
                handoff_after_turns=a.handoff_after_turns,
                enabled=a.enabled,
            )
            for a in s.agents
        ),
        topics=_topics(s.topics),
        ticket_categories=tuple(s.ticket_categories),
        role_permissions=tuple((r.role, tuple(r.permissions)) for r in s.role_permissions),
        ai_quota_monthly_tokens=s.ai_quota.monthly_tokens,
        files=_files(s.files),
    )


def _acting(tenant_id: str) -> Caller:
    """The caller, or platform staff re-scoped into the tenant they name."""
    caller = current_caller()
    if tenant_id or caller.platform_staff:
        return platformaccess.in_tenant(caller, tenant_id)
    return caller


class SettingsServicer(pb_grpc.SettingsServiceServicer):
    def __init__(self, settings: SettingsHandler) -> None:
        self._s = settings

    async def GetSettings(
        self, request: pb.GetSettingsRequest, context: Ctx
    ) -> pb.GetSettingsResponse:
        view = await self._s.get(_acting(request.tenant_id))
        return pb.GetSettingsResponse(settings=settings_message(view))

    async def UpdateSettings(
        self, request: pb.UpdateSettingsRequest, context: Ctx
    ) -> pb.UpdateSettingsResponse:
        sections = []
        for value in request.sections:
            if value not in _SECTIONS:
                raise InvalidArgument("sections: unknown section", "invalid_section")
            sections.append(_SECTIONS[value])
        view = await self._s.update(
            _acting(request.tenant_id),
            draft(request.settings),
            sections,
            request.expected_version,
        )
        return pb.UpdateSettingsResponse(settings=settings_message(view))

    async def GetPublicSettings(
        self, request: pb.GetPublicSettingsRequest, context: Ctx
    ) -> pb.GetPublicSettingsResponse:
        found = await self._s.public(current_caller())
        return pb.GetPublicSettingsResponse(settings=public_message(found))

    async def GetServiceSettings(
        self, request: pb.GetServiceSettingsRequest, context: Ctx
    ) -> pb.GetServiceSettingsResponse:
        view = await self._s.for_service(current_caller())
        return pb.GetServiceSettingsResponse(settings=settings_message(view))
