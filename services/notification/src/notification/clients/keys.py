"""Conversation's KeyService, as notification opens sealed events with it."""

from __future__ import annotations

import grpc

from confab_core.identity import NOTIFIER_USER_ID
from confab_core.sealed_events import KeyServiceClient


def key_client(channel: grpc.aio.Channel, timeout: float = 10.0) -> KeyServiceClient:
    """Keys asked for as notification's own service user."""
    return KeyServiceClient(channel, NOTIFIER_USER_ID, timeout)
