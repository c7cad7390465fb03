"""What a request needs, built once in the lifespan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from confab_core.auth import JwtVerifier
from confab_core.tenant_settings import TenantSettingsCache
from gateway.clients.backends import Backends
from gateway.clients.ops import ChatOps
from gateway.fileurls import FileUrlSigner
from gateway.settings import GatewaySettings


@dataclass
class GatewayContext:
    settings: GatewaySettings
    verifier: JwtVerifier
    backends: Backends
    ops: ChatOps
    # Set once this pod's fan-out consumer holds its partitions.
    fanout_ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Set once this pod's stream consumer (message:stream) holds its partitions.
    streams_ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Tenants' chat settings, kept current by this pod's consumer of their changes.
    tenant_settings: TenantSettingsCache | None = None
    # Set once that consumer holds its partitions.
    settings_ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Signs and checks file download URLs.
    file_urls: FileUrlSigner | None = None
