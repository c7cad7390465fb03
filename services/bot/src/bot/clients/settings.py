"""The tenant's chat settings as the bot reads them (GetServiceSettings, as a
service caller in the tenant)."""

from __future__ import annotations

from typing import Protocol

import grpc

from confab.conversation.v1 import settings_pb2 as pb
from confab.conversation.v1 import settings_pb2_grpc as pb_grpc
from confab_core.grpcx.client import translate
from confab_core.identity import BOT_USER_ID, ROLE_SERVICE, Caller, reset_caller, set_caller


class TenantSettingsSource(Protocol):
    """Where the handlers get a tenant's settings: in the service, the cache that
    the settings-changed events refresh (confab_core.tenant_settings)."""

    async def get(self, tenant_id: str) -> pb.TenantSettings: ...


class SettingsClient:
    """Reads as the current caller, which must be a service caller in the tenant."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float = 10.0) -> None:
        self._stub = pb_grpc.SettingsServiceStub(channel)
        self._timeout = timeout

    async def service_settings(self) -> pb.TenantSettings:
        try:
            resp = await self._stub.GetServiceSettings(
                pb.GetServiceSettingsRequest(), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                # A conversation service from before tenant settings (mid-rollout):
                # no tenant has any, so the defaults are the truth.
                return pb.TenantSettings()
            raise translate(exc) from exc
        return resp.settings


async def load_as_bot(client: SettingsClient, tenant_id: str) -> pb.TenantSettings:
    """A tenant's settings read as the bot, whoever the current caller is: the
    loader of the service's confab_core.tenant_settings.TenantSettingsCache."""
    token = set_caller(
        Caller(tenant_id=tenant_id, user_id=BOT_USER_ID, roles=frozenset({ROLE_SERVICE}))
    )
    try:
        return await client.service_settings()
    finally:
        reset_caller(token)
