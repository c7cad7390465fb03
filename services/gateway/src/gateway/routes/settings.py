"""The tenant's chat settings: the whole document, its sections, and the public part.

Every answer carries the document's version as a strong ETag (``"<version>"``);
a PUT must send it back in ``If-Match`` (missing: 428 ``precondition_required``;
stale: 412 ``version_mismatch``). docs/settings.md has the rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, TypeVar

import grpc
from fastapi import APIRouter, Depends, Header, Path, Response

from confab.conversation.v1 import settings_pb2 as pb
from confab_core.errors import ConfabError, InvalidArgument
from confab_core.identity import Caller
from confab_core.limits import MAX_ID_CHARS
from confab_core.tenant_settings import TenantSettingsCache
from gateway import schemas
from gateway import settings_schemas as s
from gateway.clients import settings as c
from gateway.deps import CallerDep, ContextDep
from gateway.ratelimit import Action, RateLimiter
from gateway.routes.conversations import LIMITED, WRITE_ERRORS

router = APIRouter(tags=["settings"])

T = TypeVar("T")

_ETAG = re.compile(r'(?:W/)?"?(\d{1,18})"?')

READ_ERRORS: dict[int | str, dict[str, object]] = {**WRITE_ERRORS, **LIMITED}
PUT_ERRORS: dict[int | str, dict[str, object]] = {
    **READ_ERRORS,
    412: {"model": schemas.ErrorOut, "description": "version_mismatch: read the settings again"},
    428: {"model": schemas.ErrorOut, "description": "precondition_required: send If-Match"},
}
IfMatch = Annotated[
    str | None,
    Header(
        max_length=64,
        description='the ETag of the version read ("<version>"); 0 before the first save',
    ),
]


class PreconditionFailed(ConfabError):
    grpc_status = grpc.StatusCode.FAILED_PRECONDITION
    http_status = 412
    default_code = "version_mismatch"


class PreconditionRequired(ConfabError):
    grpc_status = grpc.StatusCode.FAILED_PRECONDITION
    http_status = 428
    default_code = "precondition_required"


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(if_match: str | None) -> int:
    if if_match is None or not if_match.strip():
        raise PreconditionRequired("send If-Match with the ETag of the settings read")
    found = _ETAG.fullmatch(if_match.strip())
    if found is None:
        raise InvalidArgument('If-Match: the ETag read, "<version>"', "invalid_if_match")
    return int(found.group(1))


class SettingsOps:
    """Rate limit, then the conversation service (the public part from this pod's
    cache, which TenantSettingsChanged events keep current)."""

    def __init__(
        self,
        client: c.SettingsClient,
        limiter: RateLimiter,
        cache: TenantSettingsCache | None,
    ) -> None:
        self._client = client
        self._limiter = limiter
        self._cache = cache

    async def get(self, caller: Caller, tenant_id: str = "") -> pb.TenantSettings:
        await self._limiter.check(caller, Action.SETTINGS_READ)
        return await self._client.get(caller, tenant_id)

    async def public(self, caller: Caller) -> pb.PublicSettings:
        await self._limiter.check(caller, Action.SETTINGS_READ)
        if self._cache is None:
            return await self._client.public(caller)
        return c.public_of(await self._cache.get(caller.tenant_id))

    async def put(
        self,
        caller: Caller,
        if_match: str | None,
        settings: pb.TenantSettings,
        sections: list[pb.SettingsSection.ValueType],
        tenant_id: str = "",
    ) -> pb.TenantSettings:
        version = expected_version(if_match)
        await self._limiter.check(caller, Action.SETTINGS_WRITE)
        try:
            stored = await self._client.update(caller, settings, sections, version, tenant_id)
        except ConfabError as exc:
            if exc.code == "version_mismatch":
                raise PreconditionFailed(exc.message) from None
            raise
        if self._cache is not None:
            # This pod reads its own write at once; the others on the event.
            self._cache.invalidate(tenant_id or caller.tenant_id)
        return stored


def get_settings_ops(ctx: ContextDep) -> SettingsOps:
    return SettingsOps(ctx.backends.settings, ctx.ops.limiter, ctx.tenant_settings)


OpsDep = Annotated[SettingsOps, Depends(get_settings_ops)]


def _answer(
    response: Response, settings: pb.TenantSettings, pick: Callable[[pb.TenantSettings], T]
) -> T:
    response.headers["ETag"] = etag(settings.version)
    return pick(settings)


@router.get("/settings", response_model=s.SettingsOut, responses=READ_ERRORS)
async def get_settings(caller: CallerDep, ops: OpsDep, response: Response) -> s.SettingsOut:
    """The whole document (version 0 and the defaults before the first save);
    tenant admins only (403 ``forbidden``)."""
    return _answer(response, await ops.get(caller), c.settings_out)


@router.put("/settings", response_model=s.SettingsOut, responses=PUT_ERRORS)
async def put_settings(
    body: s.SettingsIn, caller: CallerDep, ops: OpsDep, response: Response, if_match: IfMatch = None
) -> s.SettingsOut:
    """Replaces every section (``ai_quota`` only when given: platform staff change
    it, an admin sending a changed one gets 403 ``forbidden``). Invalid values are
    422 with the rule's code (docs/settings.md)."""
    sections = c.ALL_BUT_QUOTA if body.ai_quota is None else [*c.ALL_BUT_QUOTA, c.AI_QUOTA]
    if body.files is not None:
        sections = [*sections, c.FILES]
    stored = await ops.put(caller, if_match, c.settings_in(body), sections)
    return _answer(response, stored, c.settings_out)


@router.get("/settings/public", response_model=s.PublicSettingsOut, responses=READ_ERRORS)
async def get_public_settings(
    caller: CallerDep, ops: OpsDep, response: Response
) -> s.PublicSettingsOut:
    """Branding and the enabled agents, for any member of the tenant."""
    public = await ops.public(caller)
    response.headers["ETag"] = etag(public.version)
    return c.public_out(public)


@router.get("/settings/branding", response_model=s.Branding, responses=READ_ERRORS)
async def get_branding(caller: CallerDep, ops: OpsDep, response: Response) -> s.Branding:
    return _answer(response, await ops.get(caller), lambda p: c.branding_out(p.branding))


@router.put("/settings/branding", response_model=s.Branding, responses=PUT_ERRORS)
async def put_branding(
    body: s.Branding, caller: CallerDep, ops: OpsDep, response: Response, if_match: IfMatch = None
) -> s.Branding:
    draft = pb.TenantSettings(branding=c.branding_in(body))
    stored = await ops.put(caller, if_match, draft, [c.BRANDING])
    return _answer(response, stored, lambda p: c.branding_out(p.branding))


@router.get("/settings/agents", response_model=s.Agents, responses=READ_ERRORS)
async def get_agents(caller: CallerDep, ops: OpsDep, response: Response) -> s.Agents:
    return _answer(
        response, await ops.get(caller), lambda p: s.Agents(agents=c.agents_out(list(p.agents)))
    )


@router.put("/settings/agents", response_model=s.Agents, responses=PUT_ERRORS)
async def put_agents(
    body: s.Agents, caller: CallerDep, ops: OpsDep, response: Response, if_match: IfMatch = None
) -> s.Agents:
    draft = pb.TenantSettings(agents=c.agents_in(body.agents))
    stored = await ops.put(caller, if_match, draft, [c.AGENTS])
    return _answer(response, stored, lambda p: s.Agents(agents=c.agents_out(list(p.agents))))


@router.get("/settings/topics", response_model=s.Topics, responses=READ_ERRORS)
async def get_topics(caller: CallerDep, ops: OpsDep, response: Response) -> s.Topics:
    return _answer(response, await ops.get(caller), lambda p: c.topics_out(p.topics))


@router.put("/settings/topics", response_model=s.Topics, responses=PUT_ERRORS)
async def put_topics(
    body: s.Topics, caller: CallerDep, ops: OpsDep, response: Response, if_match: IfMatch = None
) -> s.Topics:
    draft = pb.TenantSettings(topics=c.topics_in(body))
    stored = await ops.put(caller, if_match, draft, [c.TOPICS])
    return _answer(response, stored, lambda p: c.topics_out(p.topics))


def _categories(p: pb.TenantSettings) -> s.TicketCategories:
    return s.TicketCategories(ticket_categories=list(p.ticket_categories))


@router.get("/settings/ticket-categories", response_model=s.TicketCategories, responses=READ_ERRORS)
async def get_ticket_categories(
    caller: CallerDep, ops: OpsDep, response: Response
) -> s.TicketCategories:
    return _answer(response, await ops.get(caller), _categories)


@router.put("/settings/ticket-categories", response_model=s.TicketCategories, responses=PUT_ERRORS)
async def put_ticket_categories(
    body: s.TicketCategories,
    caller: CallerDep,
    ops: OpsDep,
    response: Response,
    if_match: IfMatch = None,
) -> s.TicketCategories:
    """The support desk's categories (also ``/support/categories``, unversioned)."""
    draft = pb.TenantSettings(ticket_categories=body.ticket_categories)
    stored = await ops.put(caller, if_match, draft, [c.TICKET_CATEGORIES])
    return _answer(response, stored, _categories)


def _roles(p: pb.TenantSettings) -> s.RolePermissions:
    return s.RolePermissions(role_permissions=c.role_permissions_out(p))


@router.get("/settings/role-permissions", response_model=s.RolePermissions, responses=READ_ERRORS)
async def get_role_permissions(
    caller: CallerDep, ops: OpsDep, response: Response
) -> s.RolePermissions:
    """Every tenant role's chat permissions (the defaults for roles never set)."""
    return _answer(response, await ops.get(caller), _roles)


@router.put("/settings/role-permissions", response_model=s.RolePermissions, responses=PUT_ERRORS)
async def put_role_permissions(
    body: s.RolePermissions,
    caller: CallerDep,
    ops: OpsDep,
    response: Response,
    if_match: IfMatch = None,
) -> s.RolePermissions:
    """``unknown_role``, ``unknown_permission`` and ``duplicate_role`` are 422s."""
    draft = pb.TenantSettings(role_permissions=c.role_permissions_in(body.role_permissions))
    stored = await ops.put(caller, if_match, draft, [c.ROLE_PERMISSIONS])
    return _answer(response, stored, _roles)


@router.get("/settings/files", response_model=s.FilePolicy, responses=READ_ERRORS)
async def get_file_policy(caller: CallerDep, ops: OpsDep, response: Response) -> s.FilePolicy:
    """The files policy with every default spelled out (docs/files.md#policy)."""
    return _answer(response, await ops.get(caller), lambda p: c.files_out(p.files))


@router.put("/settings/files", response_model=s.FilePolicy, responses=PUT_ERRORS)
async def put_file_policy(
    body: s.FilePolicy,
    caller: CallerDep,
    ops: OpsDep,
    response: Response,
    if_match: IfMatch = None,
) -> s.FilePolicy:
    """``invalid_max_size``, ``unknown_file_kind``, ``invalid_svg_mode``,
    ``invalid_image_pixels`` and ``invalid_file_quota`` are 422s."""
    draft = pb.TenantSettings(files=c.files_in(body))
    stored = await ops.put(caller, if_match, draft, [c.FILES])
    return _answer(response, stored, lambda p: c.files_out(p.files))


def _quota(p: pb.TenantSettings) -> s.AiQuota:
    return s.AiQuota(monthly_tokens=p.ai_quota.monthly_tokens)


@router.get("/settings/ai-quota", response_model=s.AiQuota, responses=READ_ERRORS)
async def get_ai_quota(caller: CallerDep, ops: OpsDep, response: Response) -> s.AiQuota:
    return _answer(response, await ops.get(caller), _quota)


@router.put("/settings/ai-quota", response_model=s.AiQuota, responses=PUT_ERRORS)
async def put_ai_quota(
    body: s.AiQuota, caller: CallerDep, ops: OpsDep, response: Response, if_match: IfMatch = None
) -> s.AiQuota:
    """Tenant admins may only send it back unchanged (403 ``forbidden``); platform
    staff change it with ``/platform/tenants/{tenant_id}/settings/ai-quota``."""
    draft = pb.TenantSettings(ai_quota=pb.AiQuota(monthly_tokens=body.monthly_tokens))
    stored = await ops.put(caller, if_match, draft, [c.AI_QUOTA])
    return _answer(response, stored, _quota)


TenantId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)]


@router.get(
    "/platform/tenants/{tenant_id}/settings",
    response_model=s.SettingsOut,
    responses=READ_ERRORS,
    tags=["platform"],
)
async def get_tenant_settings(
    tenant_id: TenantId, caller: CallerDep, ops: OpsDep, response: Response
) -> s.SettingsOut:
    """Platform staff only: a tenant's settings, audited in that tenant
    (``platform.settings_read``)."""
    return _answer(response, await ops.get(caller, tenant_id), c.settings_out)


@router.put(
    "/platform/tenants/{tenant_id}/settings/ai-quota",
    response_model=s.AiQuota,
    responses=PUT_ERRORS,
    tags=["platform"],
)
async def put_tenant_ai_quota(
    tenant_id: TenantId,
    body: s.AiQuota,
    caller: CallerDep,
    ops: OpsDep,
    response: Response,
    if_match: IfMatch = None,
) -> s.AiQuota:
    """Platform staff only: a tenant's monthly model-token quota (audited
    ``settings.update`` in that tenant)."""
    draft = pb.TenantSettings(ai_quota=pb.AiQuota(monthly_tokens=body.monthly_tokens))
    stored = await ops.put(caller, if_match, draft, [c.AI_QUOTA], tenant_id)
    return _answer(response, stored, _quota)
