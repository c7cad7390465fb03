"""Pure logic: signing and verifying service tokens, their caches and their cost."""

from __future__ import annotations

import time

import pytest

from confab_core.clock import FakeClock
from confab_core.errors import Unauthenticated
from confab_core.identity import ROLE_MEMBER, ROLE_SERVICE, Caller
from confab_core.servicetoken import (
    CLOCK_LEEWAY_SECONDS,
    TOKEN_TTL_SECONDS,
    InternalAuth,
    TokenSigner,
    TokenVerifier,
    Verified,
)

KEY = b"0123456789abcdef0123456789abcdef"
ALICE = Caller("t1", "alice", frozenset({ROLE_MEMBER}), "Alice", "a@example.com")


def test_a_token_proves_service_and_caller() -> None:
    clock = FakeClock()
    raw = TokenSigner("gateway", KEY, clock).token(ALICE, "presence")
    assert TokenVerifier("presence", KEY, clock).verify(raw) == Verified("gateway", ALICE)


def test_a_service_acting_as_itself_names_no_caller() -> None:
    clock = FakeClock()
    raw = TokenSigner("gateway", KEY, clock).token(None, "presence")
    assert TokenVerifier("presence", KEY, clock).verify(raw) == Verified("gateway", None)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        InternalAuth("gateway", b"short", FakeClock())


def test_tokens_are_reused_for_half_their_life_then_renewed() -> None:
    clock = FakeClock()
    signer = TokenSigner("gateway", KEY, clock)
    first = signer.token(ALICE, "presence")
    assert signer.token(ALICE, "presence") is first
    assert signer.token(ALICE, "conversation") != first
    clock.advance(TOKEN_TTL_SECONDS / 2)
    renewed = signer.token(ALICE, "presence")
    assert renewed != first
    assert TokenVerifier("presence", KEY, clock).verify(renewed).caller == ALICE


def test_expiry_holds_for_remembered_tokens_too() -> None:
    clock = FakeClock()
    raw = TokenSigner("gateway", KEY, clock).token(ALICE, "presence")
    verifier = TokenVerifier("presence", KEY, clock)
    verifier.verify(raw)
    clock.advance(TOKEN_TTL_SECONDS + CLOCK_LEEWAY_SECONDS - 1)
    verifier.verify(raw)
    clock.advance(2)
    with pytest.raises(Unauthenticated) as info:
        verifier.verify(raw)
    assert info.value.code == "service_token_expired"
    with pytest.raises(Unauthenticated):
        TokenVerifier("presence", KEY, clock).verify(raw)


def test_the_service_role_needs_a_service_that_may_grant_it() -> None:
    clock = FakeClock()
    svc = Caller("t1", "confab-notification", frozenset({ROLE_SERVICE}))
    verifier = TokenVerifier("presence", KEY, clock)
    ok = TokenSigner("notification", KEY, clock).token(svc, "presence")
    assert verifier.verify(ok).caller == svc
    bad = TokenSigner("conversation", KEY, clock).token(svc, "presence")
    with pytest.raises(Unauthenticated):
        verifier.verify(bad)


def test_signing_and_verifying_cost_microseconds() -> None:
    """The benchmark counts CPU per message: a call pays a cached sign and a
    cached verify. Loose bounds, so a slow CI machine still passes."""
    clock = FakeClock()
    signer = TokenSigner("gateway", KEY, clock)
    verifier = TokenVerifier("conversation", KEY, clock)
    n = 20_000
    started = time.perf_counter()
    for _ in range(n):
        verifier.verify(signer.token(ALICE, "conversation"))
    cached = (time.perf_counter() - started) / n
    callers = [Caller("t1", f"u{i}") for i in range(2_000)]
    started = time.perf_counter()
    for c in callers:
        verifier.verify(signer.token(c, "conversation"))
    fresh = (time.perf_counter() - started) / len(callers)
    print(f"cached sign+verify {cached * 1e6:.2f} µs, fresh {fresh * 1e6:.2f} µs")
    assert cached < 50e-6
    assert fresh < 500e-6
