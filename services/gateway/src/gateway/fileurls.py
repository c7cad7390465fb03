"""Short-lived download URLs for files, bound by HMAC to who may use them.

A URL names the file, its conversation, the variant and the expiry; the tenant
and the user it was issued to are not in it but in its signature, so only that
user's bearer token (same tenant, same user) makes it verify. Anyone else, a
changed field or a wrong key gets the same 404 as a file that does not exist:
the URL reveals nothing. Only a genuine URL past its expiry says so (403
``url_expired``), which is why the signature is checked first.

Query parameters of ``GET /api/v1/files/{file_id}/content``: ``c`` conversation
id, ``v`` variant (original, thumbnail, preview), ``e`` expiry (Unix seconds),
``s`` signature (HMAC-SHA256, base64url without padding), and for platform staff
``t``, the escalated ticket they read the conversation through (signed too).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

from confab_core.clock import Clock
from confab_core.errors import NotFound, PermissionDenied

VariantName = Literal["original", "thumbnail", "preview"]
VARIANTS: tuple[VariantName, ...] = ("original", "thumbnail", "preview")
URL_TTL_SECONDS = 120
MIN_KEY_BYTES = 32
# Versions the signed text, so a future layout can never verify as this one.
_DOMAIN = b"confab-file-url-v1"


@dataclass(frozen=True)
class SignedUrl:
    path: str
    expires_at: int


@dataclass(frozen=True)
class VerifiedUrl:
    conversation_id: str
    variant: VariantName
    ticket_id: str
    # Seconds the URL has left (what the response may be cached for).
    remaining_seconds: int


class FileUrlSigner:
    def __init__(
        self, key: bytes, clock: Clock, prefix: str, ttl_seconds: int = URL_TTL_SECONDS
    ) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the file URL key needs at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self._clock = clock
        self._prefix = prefix
        self._ttl = ttl_seconds

    def sign(
        self,
        *,
        tenant_id: str,
        user_id: str,
        conversation_id: str,
        file_id: str,
        variant: VariantName,
        ticket_id: str = "",
    ) -> SignedUrl:
        expires_at = int(self._clock.now().timestamp()) + self._ttl
        sig = self._mac(
            tenant_id, user_id, conversation_id, file_id, variant, expires_at, ticket_id
        )
        params: dict[str, str | int] = {"c": conversation_id, "v": variant, "e": expires_at}
        if ticket_id:
            params["t"] = ticket_id
        query = urlencode({**params, "s": sig})
        return SignedUrl(f"{self._prefix}/files/{file_id}/content?{query}", expires_at)

    def verify(
        self,
        *,
        tenant_id: str,
        user_id: str,
        file_id: str,
        conversation_id: str,
        variant: str,
        expires_at: str,
        signature: str,
        ticket_id: str = "",
    ) -> VerifiedUrl:
        """The URL's claims if ``signature`` binds them to this caller; NotFound
        otherwise, PermissionDenied ``url_expired`` once a genuine URL ran out."""
        not_found = NotFound("file not found", "not_found")
        if variant not in VARIANTS or not expires_at.isdigit() or len(expires_at) > 12:
            raise not_found
        expiry = int(expires_at)
        try:
            given = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        except (binascii.Error, ValueError):
            raise not_found from None
        wanted = self._raw_mac(
            tenant_id, user_id, conversation_id, file_id, variant, expiry, ticket_id
        )
        if not hmac.compare_digest(given, wanted):
            raise not_found
        remaining = expiry - int(self._clock.now().timestamp())
        if remaining <= 0:
            raise PermissionDenied("the download URL expired; ask for a new one", "url_expired")
        return VerifiedUrl(conversation_id, variant, ticket_id, min(remaining, self._ttl))

    def _mac(
        self,
        tenant_id: str,
        user_id: str,
        conversation_id: str,
        file_id: str,
        variant: str,
        expires_at: int,
        ticket_id: str,
    ) -> str:
        raw = self._raw_mac(
            tenant_id, user_id, conversation_id, file_id, variant, expires_at, ticket_id
        )
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def _raw_mac(
        self,
        tenant_id: str,
        user_id: str,
        conversation_id: str,
        file_id: str,
        variant: str,
        expires_at: int,
        ticket_id: str,
    ) -> bytes:
        # Length-prefixed fields: no two different claims can sign the same text.
        msg = bytearray(_DOMAIN)
        fields = (tenant_id, user_id, conversation_id, file_id, variant, str(expires_at), ticket_id)
        for part in fields:
            encoded = part.encode()
            msg += len(encoded).to_bytes(4, "big") + encoded
        return hmac.new(self._key, bytes(msg), hashlib.sha256).digest()
