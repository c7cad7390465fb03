"""Notification and presence, as the compliance jobs reach them.

Each call acts inside one tenant, as the conversation service itself (a
caller with no roles: the peers accept these calls only because the signed
token says the conversation service made them).
"""

from __future__ import annotations

from datetime import UTC, datetime

import grpc

from confab.notification.v1 import compliance_pb2 as npb
from confab.notification.v1 import compliance_pb2_grpc as npb_grpc
from confab.presence.v1 import compliance_pb2 as ppb
from confab.presence.v1 import compliance_pb2_grpc as ppb_grpc
from confab_core.errors import FailedPrecondition
from confab_core.grpcx.client import translate
from confab_core.identity import Caller, acting_as
from conversation.jobs.export import Page

ACTOR_ID = "confab-conversation"


def _as(tenant_id: str) -> Caller:
    return Caller(tenant_id, ACTOR_ID)


class NotificationPeer:
    """Export pages, erasure and retention of a tenant's notifications."""

    name = "notification"

    def __init__(self, channel: grpc.aio.Channel, timeout: float) -> None:
        self._stub = npb_grpc.NotificationComplianceServiceStub(channel)
        self._timeout = timeout

    async def page(self, tenant_id: str, user_id: str, after: str, limit: int) -> Page:
        req = npb.ExportNotificationsRequest(user_id=user_id, after_id=after, limit=limit)
        try:
            with acting_as(_as(tenant_id)):
                resp = await self._stub.ExportNotifications(req, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from None
        return [
            (
                n.id,
                {
                    "type": "notification",
                    "id": n.id,
                    "user_id": n.user_id,
                    "conversation_id": n.conversation_id,
                    "message_id": n.message_id,
                    "reason": n.reason,
                    "preview": n.preview,
                    "email_status": n.email_status,
                    "created_at": n.created_at.ToDatetime(tzinfo=UTC).isoformat(),
                },
            )
            for n in resp.notifications
        ]

    async def erase_user(self, tenant_id: str, user_id: str) -> int:
        req = npb.EraseUserNotificationsRequest(user_id=user_id)
        try:
            with acting_as(_as(tenant_id)):
                return (await self._stub.EraseUserNotifications(req, timeout=self._timeout)).deleted
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from None

    async def erase_tenant(self, tenant_id: str) -> int:
        req = npb.EraseTenantNotificationsRequest()
        try:
            with acting_as(_as(tenant_id)):
                resp = await self._stub.EraseTenantNotifications(req, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from None
        return resp.deleted

    async def purge_before(self, tenant_id: str, cutoff: datetime) -> int:
        req = npb.PurgeNotificationsBeforeRequest()
        req.cutoff.FromDatetime(cutoff)
        try:
            with acting_as(_as(tenant_id)):
                resp = await self._stub.PurgeNotificationsBefore(req, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from None
        return resp.deleted


class PresencePeer:
    """Erasure of presence (Redis keys) in the presence service."""

    name = "presence"

    def __init__(self, channel: grpc.aio.Channel, timeout: float) -> None:
        self._stub = ppb_grpc.PresenceComplianceServiceStub(channel)
        self._timeout = timeout

    async def erase_user(self, tenant_id: str, user_id: str) -> int:
        req = ppb.EraseUserPresenceRequest(user_id=user_id)
        try:
            with acting_as(_as(tenant_id)):
                resp = await self._stub.EraseUserPresence(req, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from None
        return resp.deleted_keys

    async def erase_tenant(self, tenant_id: str) -> int:
        req = ppb.EraseTenantPresenceRequest()
        try:
            with acting_as(_as(tenant_id)):
                resp = await self._stub.EraseTenantPresence(req, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from None
        return resp.deleted_keys


class MissingPeer:
    """A peer whose address is not configured: a job that needs it fails saying so."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _fail(self) -> FailedPrecondition:
        return FailedPrecondition(
            f"the {self.name} service is not configured", "peer_not_configured"
        )

    async def page(self, tenant_id: str, user_id: str, after: str, limit: int) -> Page:
        raise self._fail()

    async def erase_user(self, tenant_id: str, user_id: str) -> int:
        raise self._fail()

    async def erase_tenant(self, tenant_id: str) -> int:
        raise self._fail()

    async def purge_before(self, tenant_id: str, cutoff: datetime) -> int:
        raise self._fail()
