"""The notification service, as the gateway calls it: one typed method per RPC."""

from __future__ import annotations

from typing import TYPE_CHECKING

from confab.notification.v1 import notification_pb2 as npb
from confab_core.identity import Caller
from gateway.clients.peer import PeerClient

if TYPE_CHECKING:
    from confab.notification.v1.notification_pb2_grpc import NotificationServiceAsyncStub


class NotificationClient(PeerClient):
    def __init__(self, stub: NotificationServiceAsyncStub, timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub

    async def list_notifications(
        self, caller: Caller, request: npb.ListNotificationsRequest
    ) -> npb.ListNotificationsResponse:
        return await self._call(self._stub.ListNotifications, request, caller)
