"""Stored presence to protobuf messages."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from confab.presence.v1 import presence_pb2 as pb
from presence.storage.presence import PresenceState


def presence(state: PresenceState) -> pb.UserPresence:
    out = pb.UserPresence(
        user_id=state.user_id, status=state.status, device_count=state.device_count
    )
    if state.last_active_ms is not None:
        ts = Timestamp()
        ts.FromMilliseconds(state.last_active_ms)
        out.last_active_at.CopyFrom(ts)
    return out
