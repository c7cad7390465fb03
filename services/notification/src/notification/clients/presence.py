"""The presence service, as the notification service uses it."""

from __future__ import annotations

import grpc

from confab.presence.v1 import presence_pb2 as pb
from confab.presence.v1 import presence_pb2_grpc as pb_grpc
from confab_core.grpcx.client import translate

# The presence service answers at most this many user ids per call.
BATCH = 500


class PresenceClient:
    """Calls act for whoever ``current_caller()`` is (the notification service's
    own service caller); the channel signs it into the service token."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float = 10.0) -> None:
        self._stub = pb_grpc.PresenceServiceStub(channel)
        self._timeout = timeout

    async def statuses(self, user_ids: list[str]) -> dict[str, int]:
        """Status per user id; a user presence does not mention is UNSPECIFIED."""
        found: dict[str, int] = {}
        for start in range(0, len(user_ids), BATCH):
            try:
                resp = await self._stub.GetPresence(
                    pb.GetPresenceRequest(user_ids=user_ids[start : start + BATCH]),
                    timeout=self._timeout,
                )
            except grpc.aio.AioRpcError as exc:
                raise translate(exc) from exc
            found.update((p.user_id, int(p.status)) for p in resp.presences)
        return {uid: found.get(uid, pb.PRESENCE_STATUS_UNSPECIFIED) for uid in user_ids}
