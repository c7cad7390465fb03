"""JWT verification: an HS256 shared secret in dev, RS256 keys from JWKS in production.

Claims: ``sub`` (user id), ``tid`` (tenant id), ``roles``, ``name``, ``email``,
``exp``; ``iss`` and ``aud`` are checked when configured.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import jwt

from confab_core.errors import Unauthenticated
from confab_core.identity import (
    PLATFORM_TENANT_ID,
    PLATFORM_USER_PREFIX,
    ROLE_AGENT,
    ROLE_MEMBER,
    ROLE_SERVICE,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
    Caller,
    is_service_user,
)
from confab_core.limits import MAX_ID_CHARS

KNOWN_ROLES = frozenset({ROLE_SUPER_ADMIN, ROLE_TENANT_ADMIN, ROLE_AGENT, ROLE_MEMBER})


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    caller: Caller
    # The token's ``exp`` claim, in seconds since the epoch.
    expires_at: float


class JwtVerifier:
    def __init__(
        self,
        *,
        hs256_secret: str | None = None,
        jwks_url: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        leeway_seconds: int = 30,
    ) -> None:
        if not hs256_secret and not jwks_url:
            raise ValueError("either an HS256 secret or a JWKS URL is required")
        self._secret = hs256_secret
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300) if jwks_url else None
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds

    async def verify(self, token: str) -> Caller:
        return (await self.verify_token(token)).caller

    async def verify_token(self, token: str) -> VerifiedToken:
        """The caller and the moment the token stops being valid (for sockets, which
        outlive the handshake that checked it)."""
        if not token:
            raise Unauthenticated("missing bearer token", "missing_token")
        try:
            if self._jwks is not None:
                # PyJWKClient fetches over blocking HTTP when its cache is cold.
                signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
                key: Any = signing_key.key
                algorithms = ["RS256"]
            else:
                key = self._secret
                algorithms = ["HS256"]
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired", "token_expired") from exc
        except (jwt.PyJWTError, ValueError) as exc:
            raise Unauthenticated("invalid token", "invalid_token") from exc
        return VerifiedToken(caller_from_claims(claims), float(claims["exp"]))


def caller_from_claims(claims: dict[str, Any]) -> Caller:
    tenant = claims.get("tid")
    user = claims.get("sub")
    roles = claims.get("roles", [ROLE_MEMBER])
    if not isinstance(tenant, str) or not tenant or len(tenant) > MAX_ID_CHARS:
        raise Unauthenticated("token has no valid tenant", "invalid_token")
    if not isinstance(user, str) or not user or len(user) > MAX_ID_CHARS:
        raise Unauthenticated("token has no valid subject", "invalid_token")
    # The services act as these users: a client that could name one would post as the bot.
    if is_service_user(user) or user.startswith(PLATFORM_USER_PREFIX):
        raise Unauthenticated("token names a reserved user", "invalid_token")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthenticated("token roles must be a list of strings", "invalid_token")
    # A client token can never claim the internal service role.
    granted = frozenset(r for r in roles if r in KNOWN_ROLES) or frozenset({ROLE_MEMBER})
    if ROLE_SERVICE in roles:
        raise Unauthenticated("token claims a reserved role", "invalid_token")
    # Platform staff live outside every tenant: a super_admin naming a tenant would
    # read as an admin of it, and a tenant role in the platform tenant means nothing.
    if (ROLE_SUPER_ADMIN in granted) != (tenant == PLATFORM_TENANT_ID):
        raise Unauthenticated("super_admin belongs to the platform tenant only", "invalid_token")
    if tenant == PLATFORM_TENANT_ID and granted != {ROLE_SUPER_ADMIN}:
        raise Unauthenticated("the platform tenant has no other roles", "invalid_token")
    return Caller(
        tenant_id=tenant,
        user_id=user,
        roles=granted,
        display_name=str(claims.get("name", ""))[:200],
        email=str(claims.get("email", ""))[:320],
    )


def mint_hs256(
    secret: str,
    *,
    tenant_id: str,
    user_id: str,
    roles: list[str] | None = None,
    name: str = "",
    email: str = "",
    ttl_seconds: int = 3600,
    now: float | None = None,
) -> str:
    """Dev and test tokens; production tokens come from the tenant's IdP."""
    issued = int(now if now is not None else time.time())
    return jwt.encode(
        {
            "sub": user_id,
            "tid": tenant_id,
            "roles": roles or [ROLE_MEMBER],
            "name": name,
            "email": email,
            "iat": issued,
            "exp": issued + ttl_seconds,
        },
        secret,
        algorithm="HS256",
    )
