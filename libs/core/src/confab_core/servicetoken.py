"""Signed identity between services: who is calling, for whom, and until when.

Every gRPC call between Confab services carries one token in metadata
(``confab-caller-bin``): HMAC-SHA256 over a small JSON body naming the calling
service (``iss``), the service called (``aud``), an expiry (``exp``, epoch
seconds) and the end-user Caller it acts for (or none, when a service acts as
itself: heartbeats, sweeps). The key is shared by the services of one
deployment and never leaves them; clients only ever hold JWTs, which the
gateway verifies and turns into a Caller.

Cost: one token is signed per (caller, audience) and reused until half its
life has passed, and a verifier remembers tokens it already checked until they
expire, so a busy socket pays a dict lookup per call, not an HMAC and a JSON
parse.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from confab_core.clock import Clock
from confab_core.errors import Unauthenticated
from confab_core.grpcx.tls import GrpcTls
from confab_core.identity import ROLE_SERVICE, Caller

# The services' names: each signs as its own and accepts tokens addressed to it.
GATEWAY = "gateway"
CONVERSATION = "conversation"
PRESENCE = "presence"
BOT = "bot"
NOTIFICATION = "notification"

# Shorter than any useful replay window, longer than any call (timeouts are seconds).
TOKEN_TTL_SECONDS = 60
# Pods' clocks drift a little; a token this far past exp is still accepted.
CLOCK_LEEWAY_SECONDS = 10
MIN_KEY_BYTES = 32
# Services that may act with the service role (inside one event's tenant).
# The gateway does so for heartbeats and for fan-out lookups, bot and
# notification when they consume events; conversation and presence only ever
# forward the end user they were called for.
SERVICE_ROLE_ISSUERS = frozenset({GATEWAY, BOT, NOTIFICATION})
# Both caches are bounded; past this, they start over (a burst of re-signing).
_CACHE_ENTRIES = 50_000
_MAC_BYTES = hashlib.sha256().digest_size


@dataclass(frozen=True, slots=True)
class Verified:
    """What a valid token proved: the calling service, and whom it acts for."""

    service: str
    caller: Caller | None


def _epoch(clock: Clock) -> float:
    return clock.now().timestamp()


class TokenSigner:
    """Signs as ``service``; one per process."""

    def __init__(self, service: str, key: bytes, clock: Clock) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the internal key needs at least {MIN_KEY_BYTES} bytes")
        self.service = service
        self._key = key
        self._clock = clock
        # (caller, audience) -> (token, epoch seconds after which to sign anew)
        self._cache: dict[tuple[Caller | None, str], tuple[bytes, float]] = {}

    def token(self, caller: Caller | None, audience: str) -> bytes:
        now = _epoch(self._clock)
        hit = self._cache.get((caller, audience))
        if hit is not None and now < hit[1]:
            return hit[0]
        exp = int(now) + TOKEN_TTL_SECONDS
        body = json.dumps(
            {
                "iss": self.service,
                "aud": audience,
                "exp": exp,
                "caller": None if caller is None else caller.to_doc(),
            },
            separators=(",", ":"),
        ).encode()
        raw = hmac.new(self._key, body, hashlib.sha256).digest() + body
        if len(self._cache) >= _CACHE_ENTRIES:
            self._cache.clear()
        self._cache[(caller, audience)] = (raw, now + TOKEN_TTL_SECONDS / 2)
        return raw


class TokenVerifier:
    """Accepts tokens addressed to ``audience`` signed with the shared key."""

    def __init__(self, audience: str, key: bytes, clock: Clock) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the internal key needs at least {MIN_KEY_BYTES} bytes")
        self.audience = audience
        self._key = key
        self._clock = clock
        # token -> (exp, what it proved); only valid tokens are remembered.
        self._seen: dict[bytes, tuple[int, Verified]] = {}

    def verify(self, raw: bytes) -> Verified:
        now = _epoch(self._clock)
        hit = self._seen.get(raw)
        if hit is not None:
            if now > hit[0] + CLOCK_LEEWAY_SECONDS:
                raise Unauthenticated("service token expired", "service_token_expired")
            return hit[1]
        mac, body = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        expected = hmac.new(self._key, body, hashlib.sha256).digest()
        if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, expected):
            raise Unauthenticated("unsigned or forged service token", "bad_service_token")
        exp, verified = self._parse(body)
        if now > exp + CLOCK_LEEWAY_SECONDS:
            raise Unauthenticated("service token expired", "service_token_expired")
        if len(self._seen) >= _CACHE_ENTRIES:
            self._seen.clear()
        self._seen[raw] = (exp, verified)
        return verified

    def _parse(self, body: bytes) -> tuple[int, Verified]:
        # Signed by a peer of ours, so malformed content is a bug there; still
        # a clean UNAUTHENTICATED rather than a crash here.
        try:
            doc = json.loads(body)
            iss, aud, exp, who = doc["iss"], doc["aud"], doc["exp"], doc["caller"]
            if not isinstance(iss, str) or not iss or not isinstance(exp, int):
                raise ValueError("iss and exp")
            caller = None if who is None else Caller.from_doc(who)
        except (ValueError, KeyError, TypeError, Unauthenticated) as exc:
            raise Unauthenticated("malformed service token", "bad_service_token") from exc
        if aud != self.audience:
            raise Unauthenticated("service token for another service", "bad_service_token")
        if caller is not None and ROLE_SERVICE in caller.roles and iss not in SERVICE_ROLE_ISSUERS:
            raise Unauthenticated(f"{iss} may not act with the service role", "bad_service_token")
        return exp, Verified(iss, caller)


class InternalAuth:
    """A service's identity among its peers: signs what it sends, verifies what it serves.

    With ``tls``, it also presents its certificate on every channel it opens and
    requires one on the port it serves (grpcx.tls); without, both are plaintext.
    """

    def __init__(self, service: str, key: bytes, clock: Clock, tls: GrpcTls | None = None) -> None:
        self.service = service
        self.tls = tls
        self.signer = TokenSigner(service, key, clock)
        self.verifier = TokenVerifier(service, key, clock)
