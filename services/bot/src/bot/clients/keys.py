"""Conversation's KeyService, as the bot opens sealed events with it."""

from __future__ import annotations

import grpc

from confab_core.identity import BOT_USER_ID
from confab_core.sealed_events import KeyServiceClient


def key_client(channel: grpc.aio.Channel, timeout: float = 10.0) -> KeyServiceClient:
    """Keys asked for as the bot's own service user."""
    return KeyServiceClient(channel, BOT_USER_ID, timeout)
