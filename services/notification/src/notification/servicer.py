"""gRPC servicer: translates requests to handler calls and results to protos."""

from __future__ import annotations

from confab.notification.v1 import notification_pb2 as pb
from confab.notification.v1 import notification_pb2_grpc as pb_grpc
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from notification import convert
from notification.handlers.queries import NotificationQueries


class NotificationServicer(pb_grpc.NotificationServiceServicer):
    def __init__(self, queries: NotificationQueries) -> None:
        self._queries = queries

    async def ListNotifications(
        self, request: pb.ListNotificationsRequest, context: Ctx
    ) -> pb.ListNotificationsResponse:
        docs = await self._queries.list_for_caller(current_caller(), request.limit)
        return pb.ListNotificationsResponse(notifications=[convert.notification(d) for d in docs])
