"""JWT verification: HS256 with a shared secret, RS256 with keys from a JWKS endpoint."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from confab_core.auth import JwtVerifier, caller_from_claims, mint_hs256
from confab_core.errors import Unauthenticated
from confab_core.identity import (
    PLATFORM_TENANT_ID,
    ROLE_AGENT,
    ROLE_MEMBER,
    ROLE_SERVICE,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
    SERVICE_USER_IDS,
)

SECRET = "test-secret-that-is-long-enough-for-hs256!"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "alice",
        "tid": "tenant-a",
        "roles": [ROLE_MEMBER],
        "name": "Alice",
        "email": "alice@example.com",
        "iat": now,
        "exp": now + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs256(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def rejected(verifier: JwtVerifier, token: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as info:
        await verifier.verify(token)
    return info.value


# -- HS256 -------------------------------------------------------------------


@pytest.fixture
def hs() -> JwtVerifier:
    return JwtVerifier(hs256_secret=SECRET)


def test_a_key_source_is_required() -> None:
    with pytest.raises(ValueError):
        JwtVerifier()


@pytest.mark.asyncio
async def test_hs256_valid_token(hs: JwtVerifier) -> None:
    caller = await hs.verify(hs256(claims(roles=[ROLE_MEMBER, ROLE_AGENT])))
    assert caller.tenant_id == "tenant-a"
    assert caller.user_id == "alice"
    assert caller.roles == frozenset({ROLE_MEMBER, ROLE_AGENT})
    assert caller.display_name == "Alice"
    assert caller.email == "alice@example.com"


@pytest.mark.asyncio
async def test_mint_hs256_round_trips(hs: JwtVerifier) -> None:
    token = mint_hs256(SECRET, tenant_id="t1", user_id="bob", roles=[ROLE_TENANT_ADMIN], name="Bob")
    caller = await hs.verify(token)
    assert (caller.tenant_id, caller.user_id, caller.display_name) == ("t1", "bob", "Bob")
    assert caller.roles == frozenset({ROLE_TENANT_ADMIN})


@pytest.mark.asyncio
async def test_empty_token_is_missing(hs: JwtVerifier) -> None:
    assert (await rejected(hs, "")).code == "missing_token"


@pytest.mark.asyncio
async def test_expired_token(hs: JwtVerifier) -> None:
    # Well past the 30 s leeway.
    token = mint_hs256(SECRET, tenant_id="t", user_id="u", now=time.time() - 7200)
    assert (await rejected(hs, token)).code == "token_expired"


@pytest.mark.asyncio
async def test_expiry_within_leeway_is_accepted(hs: JwtVerifier) -> None:
    token = hs256(claims(exp=int(time.time()) - 5))
    assert (await hs.verify(token)).user_id == "alice"


@pytest.mark.asyncio
async def test_forged_signature(hs: JwtVerifier) -> None:
    forged = hs256(claims(), secret="another-secret-of-sufficient-length!!")
    assert (await rejected(hs, forged)).code == "invalid_token"


@pytest.mark.asyncio
async def test_tampered_payload(hs: JwtVerifier) -> None:
    header, _payload, signature = hs256(claims()).split(".")
    evil = b64(json.dumps(claims(tid="tenant-b")).encode())
    assert (await rejected(hs, f"{header}.{evil}.{signature}")).code == "invalid_token"


@pytest.mark.asyncio
async def test_garbage_token(hs: JwtVerifier) -> None:
    assert (await rejected(hs, "not.a.jwt")).code == "invalid_token"
    assert (await rejected(hs, "garbage")).code == "invalid_token"


@pytest.mark.asyncio
@pytest.mark.parametrize("missing", ["exp", "sub", "tid"])
async def test_missing_claims(hs: JwtVerifier, missing: str) -> None:
    token = hs256(claims(**{missing: None}))
    assert (await rejected(hs, token)).code == "invalid_token"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "override",
    [
        {"sub": ""},
        {"tid": ""},
        {"sub": 42},
        {"tid": ["tenant-a"]},
        {"tid": "t" * 129},
        {"sub": "u" * 129},
        {"roles": "member"},
        {"roles": [1, 2]},
        {"roles": None},
    ],
)
async def test_invalid_claim_values(hs: JwtVerifier, override: dict[str, Any]) -> None:
    payload = claims()
    payload.update(override)
    assert (await rejected(hs, hs256(payload))).code == "invalid_token"


@pytest.mark.asyncio
async def test_none_algorithm_is_rejected(hs: JwtVerifier) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    assert (await rejected(hs, f"{header}.{payload}.")).code == "invalid_token"


@pytest.mark.asyncio
async def test_other_algorithm_is_rejected(hs: JwtVerifier) -> None:
    # Correctly signed with the secret, but HS512 is not on the allow list.
    token = jwt.encode(claims(), SECRET + SECRET, algorithm="HS512")
    assert (await rejected(hs, token)).code == "invalid_token"


@pytest.mark.asyncio
async def test_service_role_is_reserved(hs: JwtVerifier) -> None:
    token = hs256(claims(roles=[ROLE_MEMBER, ROLE_SERVICE]))
    err = await rejected(hs, token)
    assert err.code == "invalid_token"
    assert "reserved" in err.message


@pytest.mark.asyncio
@pytest.mark.parametrize("user", sorted(SERVICE_USER_IDS))
async def test_service_user_ids_are_reserved_subjects(hs: JwtVerifier, user: str) -> None:
    err = await rejected(hs, hs256(claims(sub=user)))
    assert err.code == "invalid_token"
    assert "reserved" in err.message


@pytest.mark.asyncio
async def test_unknown_roles_are_dropped(hs: JwtVerifier) -> None:
    caller = await hs.verify(hs256(claims(roles=[ROLE_AGENT, "wizard", "root"])))
    assert caller.roles == frozenset({ROLE_AGENT})
    only_unknown = await hs.verify(hs256(claims(roles=["wizard"])))
    assert only_unknown.roles == frozenset({ROLE_MEMBER})
    no_roles = await hs.verify(hs256(claims(roles=None)))
    assert no_roles.roles == frozenset({ROLE_MEMBER})


@pytest.mark.asyncio
async def test_issuer_and_audience_are_checked_when_configured() -> None:
    verifier = JwtVerifier(hs256_secret=SECRET, issuer="https://idp", audience="confab")
    good = hs256(claims(iss="https://idp", aud="confab"))
    assert (await verifier.verify(good)).user_id == "alice"
    for bad in (
        claims(iss="https://evil", aud="confab"),
        claims(iss="https://idp", aud="other"),
        claims(aud="confab"),
        claims(iss="https://idp"),
    ):
        assert (await rejected(verifier, hs256(bad))).code == "invalid_token"


def test_caller_from_claims_truncates_profile_fields() -> None:
    caller = caller_from_claims(claims(name="n" * 500, email="e" * 500))
    assert len(caller.display_name) == 200
    assert len(caller.email) == 320


def test_super_admin_is_a_platform_role_outside_every_tenant() -> None:
    staff = caller_from_claims(claims(tid=PLATFORM_TENANT_ID, roles=[ROLE_SUPER_ADMIN]))
    assert staff.platform_staff and staff.tenant_id == PLATFORM_TENANT_ID
    for bad in (
        # A super_admin naming a tenant would read as that tenant's admin.
        claims(roles=[ROLE_SUPER_ADMIN]),
        claims(roles=[ROLE_SUPER_ADMIN, ROLE_TENANT_ADMIN]),
        # The platform tenant holds platform staff only.
        claims(tid=PLATFORM_TENANT_ID, roles=[ROLE_TENANT_ADMIN]),
        claims(tid=PLATFORM_TENANT_ID, roles=[ROLE_SUPER_ADMIN, ROLE_AGENT]),
        claims(tid=PLATFORM_TENANT_ID, roles=[]),
        claims(tid=PLATFORM_TENANT_ID, roles=["unknown"]),
        # The ids platform staff act under inside tenants are reserved.
        claims(sub=f"{PLATFORM_TENANT_ID}:alice"),
    ):
        with pytest.raises(Unauthenticated) as info:
            caller_from_claims(bad)
        assert info.value.code == "invalid_token"
    assert not caller_from_claims(claims(roles=[ROLE_TENANT_ADMIN])).platform_staff


# -- RS256 through JWKS --------------------------------------------------------


@dataclass
class Jwks:
    url: str
    private_pem: bytes
    public_pem: bytes
    kid: str
    requests: list[str]


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def jwks() -> Iterator[Jwks]:
    key = _rsa()
    kid = "key-1"
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    body = json.dumps({"keys": [jwk]}).encode()
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            if self.path != "/.well-known/jwks.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Jwks(
            url=f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json",
            private_pem=_pem(key),
            public_pem=key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            kid=kid,
            requests=requests,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def rs256(payload: dict[str, Any], pem: bytes, kid: str | None) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload, pem, algorithm="RS256", headers=headers)


@pytest.mark.asyncio
async def test_rs256_valid_token_through_jwks(jwks: Jwks) -> None:
    verifier = JwtVerifier(jwks_url=jwks.url, issuer="https://idp")
    token = rs256(claims(iss="https://idp", roles=[ROLE_TENANT_ADMIN]), jwks.private_pem, jwks.kid)
    caller = await verifier.verify(token)
    assert (caller.tenant_id, caller.user_id) == ("tenant-a", "alice")
    assert caller.roles == frozenset({ROLE_TENANT_ADMIN})
    # The key set is cached: a second token costs no fetch.
    fetched = len(jwks.requests)
    await verifier.verify(rs256(claims(iss="https://idp", sub="bob"), jwks.private_pem, jwks.kid))
    assert len(jwks.requests) == fetched


@pytest.mark.asyncio
async def test_rs256_signed_by_another_key_is_rejected(jwks: Jwks) -> None:
    verifier = JwtVerifier(jwks_url=jwks.url)
    other = _pem(_rsa())
    # Same kid, wrong key: the signature check fails.
    assert (await rejected(verifier, rs256(claims(), other, jwks.kid))).code == "invalid_token"
    # Unknown kid: no key to check against.
    assert (await rejected(verifier, rs256(claims(), other, "key-2"))).code == "invalid_token"
    # No kid at all.
    assert (await rejected(verifier, rs256(claims(), other, None))).code == "invalid_token"


@pytest.mark.asyncio
async def test_rs256_expired_and_reserved_role(jwks: Jwks) -> None:
    verifier = JwtVerifier(jwks_url=jwks.url)
    expired = rs256(claims(exp=int(time.time()) - 3600), jwks.private_pem, jwks.kid)
    assert (await rejected(verifier, expired)).code == "token_expired"
    service = rs256(claims(roles=[ROLE_SERVICE]), jwks.private_pem, jwks.kid)
    assert (await rejected(verifier, service)).code == "invalid_token"


@pytest.mark.asyncio
async def test_jwks_verifier_rejects_hs256_and_none(jwks: Jwks) -> None:
    verifier = JwtVerifier(jwks_url=jwks.url)
    # Algorithm confusion: HMAC keyed with the public key must not pass as RS256.
    confused_header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": jwks.kid}).encode())
    payload = b64(json.dumps(claims()).encode())
    signing_input = f"{confused_header}.{payload}".encode()
    sig = b64(hmac.new(jwks.public_pem, signing_input, hashlib.sha256).digest())
    assert (await rejected(verifier, f"{confused_header}.{payload}.{sig}")).code == "invalid_token"
    none_header = b64(json.dumps({"alg": "none", "kid": jwks.kid}).encode())
    assert (await rejected(verifier, f"{none_header}.{payload}.")).code == "invalid_token"


@pytest.mark.asyncio
async def test_unreachable_jwks_rejects() -> None:
    # Port 9 (discard) on loopback: nothing listens there.
    verifier = JwtVerifier(jwks_url="http://127.0.0.1:9/jwks.json")
    key = _pem(_rsa())
    assert (await rejected(verifier, rs256(claims(), key, "k"))).code == "invalid_token"


@pytest.mark.asyncio
async def test_verify_token_gives_the_exp_sockets_close_at() -> None:
    verifier = JwtVerifier(hs256_secret=SECRET)
    payload = claims()
    verified = await verifier.verify_token(hs256(payload))
    assert verified.expires_at == float(payload["exp"])
    assert verified.caller == await verifier.verify(hs256(payload))
