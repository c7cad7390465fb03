"""Stored presence to protobuf messages."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from confab.presence.v1 import presence_pb2 as pb
from presence.storage.presence import PresenceState


def timestamp(ms: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def presence(state: PresenceState) -> pb.UserPresence:
    out = pb.UserPresence(
        user_id=state.user_id,
        status=state.status,
        device_count=state.device_count,
        chosen_status=state.chosen_status,
        custom_status=state.custom_status,
    )
    if state.last_active_ms is not None:
        out.last_active_at.CopyFrom(timestamp(state.last_active_ms))
    if state.custom_status and state.custom_status_expires_ms is not None:
        out.custom_status_expires_at.CopyFrom(timestamp(state.custom_status_expires_ms))
    return out
