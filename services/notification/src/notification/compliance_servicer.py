"""gRPC servicer of NotificationComplianceService: translation only."""

from __future__ import annotations

from datetime import UTC

from confab.notification.v1 import compliance_pb2 as pb
from confab.notification.v1 import compliance_pb2_grpc as pb_grpc
from confab.notification.v1 import notification_pb2 as npb
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from confab_core.mongo import Doc
from notification.handlers.compliance import NotificationCompliance


def _exported(doc: Doc) -> pb.ExportedNotification:
    out = pb.ExportedNotification(
        id=doc["_id"],
        user_id=doc["user_id"],
        conversation_id=doc["conversation_id"],
        message_id=doc["message_id"],
        reason=npb.NotificationReason.Name(doc["reason"])
        .removeprefix("NOTIFICATION_REASON_")
        .lower(),
        preview=doc.get("preview", ""),
        email_status=npb.DeliveryStatus.Name(doc["email_status"])
        .removeprefix("DELIVERY_STATUS_")
        .lower(),
    )
    out.created_at.FromDatetime(doc["created_at"])
    return out


class NotificationComplianceServicer(pb_grpc.NotificationComplianceServiceServicer):
    def __init__(self, compliance: NotificationCompliance) -> None:
        self._c = compliance

    async def ExportNotifications(
        self, request: pb.ExportNotificationsRequest, context: Ctx
    ) -> pb.ExportNotificationsResponse:
        docs = await self._c.export_page(
            current_caller(), request.user_id, request.after_id, request.limit
        )
        return pb.ExportNotificationsResponse(notifications=[_exported(d) for d in docs])

    async def EraseUserNotifications(
        self, request: pb.EraseUserNotificationsRequest, context: Ctx
    ) -> pb.EraseUserNotificationsResponse:
        deleted = await self._c.erase_user(current_caller(), request.user_id)
        return pb.EraseUserNotificationsResponse(deleted=deleted)

    async def EraseTenantNotifications(
        self, request: pb.EraseTenantNotificationsRequest, context: Ctx
    ) -> pb.EraseTenantNotificationsResponse:
        return pb.EraseTenantNotificationsResponse(
            deleted=await self._c.erase_tenant(current_caller())
        )

    async def PurgeNotificationsBefore(
        self, request: pb.PurgeNotificationsBeforeRequest, context: Ctx
    ) -> pb.PurgeNotificationsBeforeResponse:
        cutoff = request.cutoff.ToDatetime(tzinfo=UTC)
        deleted = await self._c.purge_before(current_caller(), cutoff)
        return pb.PurgeNotificationsBeforeResponse(deleted=deleted)
