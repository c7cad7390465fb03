"""Signed file URLs: bound to tenant, user, conversation, file, variant and expiry;
anything but the genuine URL for its own user is a 404, an expired one a 403."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from confab_core.clock import FakeClock
from confab_core.errors import NotFound, PermissionDenied
from gateway.fileurls import FileUrlSigner

KEY = b"k" * 32
CLAIMS = {
    "tenant_id": "t1",
    "user_id": "u1",
    "conversation_id": "c1",
    "file_id": "f1",
}


def signer(clock: FakeClock, key: bytes = KEY) -> FileUrlSigner:
    return FileUrlSigner(key, clock, "/api/v1")


def issue(s: FileUrlSigner, variant: str = "original") -> dict[str, str]:
    signed = s.sign(variant=variant, **CLAIMS)  # type: ignore[arg-type]
    parts = urlsplit(signed.path)
    assert parts.path == f"/api/v1/files/{CLAIMS['file_id']}/content"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["e"] == str(signed.expires_at)
    return query


def check(s: FileUrlSigner, q: dict[str, str], **override: str) -> object:
    args = {
        "tenant_id": "t1",
        "user_id": "u1",
        "file_id": "f1",
        "conversation_id": q["c"],
        "variant": q["v"],
        "expires_at": q["e"],
        "signature": q["s"],
    }
    args.update(override)
    return s.verify(**args)


def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 1, tzinfo=UTC))


def test_the_genuine_url_verifies_for_its_user_until_it_expires() -> None:
    c = clock()
    s = signer(c)
    q = issue(s, "thumbnail")
    verified = check(s, q)
    assert verified.variant == "thumbnail"  # type: ignore[attr-defined]
    assert verified.conversation_id == "c1"  # type: ignore[attr-defined]
    assert verified.remaining_seconds == 120  # type: ignore[attr-defined]
    c.advance(119)
    assert check(s, q).remaining_seconds == 1  # type: ignore[attr-defined]
    c.advance(1)
    with pytest.raises(PermissionDenied) as exc:
        check(s, q)
    assert exc.value.code == "url_expired"


@pytest.mark.parametrize(
    "override",
    [
        {"user_id": "u2"},
        {"tenant_id": "t2"},
        {"file_id": "f2"},
        {"conversation_id": "c2"},
        {"variant": "preview"},
        {"variant": "bogus"},
        {"expires_at": "9999999999"},
        {"expires_at": "-1"},
        {"expires_at": "1e9"},
        {"signature": "AAAA"},
        {"signature": "!!not base64!!"},
        {"signature": ""},
    ],
)
def test_any_other_claim_is_not_found(override: dict[str, str]) -> None:
    s = signer(clock())
    with pytest.raises(NotFound) as exc:
        check(s, issue(s), **override)
    assert exc.value.code == "not_found"


def test_the_signature_is_checked_before_the_expiry() -> None:
    """An expired URL of another user reveals nothing either: 404, not 403."""
    c = clock()
    s = signer(c)
    q = issue(s)
    c.advance(3600)
    with pytest.raises(NotFound):
        check(s, q, user_id="u2")


def test_another_key_does_not_verify() -> None:
    c = clock()
    q = issue(signer(c))
    with pytest.raises(NotFound):
        check(signer(c, b"x" * 32), q)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        FileUrlSigner(b"k" * 31, clock(), "/api/v1")


def test_fields_cannot_be_shifted_between_claims() -> None:
    """Length-prefixed: ("t1", "u1x") and ("t1u", "1x") sign different texts."""
    c = clock()
    s = signer(c)
    signed = s.sign(
        tenant_id="t1", user_id="u1x", conversation_id="c1", file_id="f1", variant="original"
    )
    q = {k: v[0] for k, v in parse_qs(urlsplit(signed.path).query).items()}
    with pytest.raises(NotFound):
        check(s, q, tenant_id="t1u", user_id="1x")


def test_a_platform_url_binds_its_ticket() -> None:
    s = signer(clock())
    signed = s.sign(variant="original", ticket_id="tk1", **CLAIMS)  # type: ignore[arg-type]
    q = {k: v[0] for k, v in parse_qs(urlsplit(signed.path).query).items()}
    assert q["t"] == "tk1"
    assert check(s, q, ticket_id="tk1").ticket_id == "tk1"  # type: ignore[attr-defined]
    for other in ("", "tk2"):
        with pytest.raises(NotFound):
            check(s, q, ticket_id=other)
    # A member's URL cannot be used as a platform one either.
    with pytest.raises(NotFound):
        check(s, issue(s), ticket_id="tk1")
