"""Pure logic: caller identity, error mapping, the fake clock, ids."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from confab_core import errors
from confab_core.clock import FakeClock, SystemClock
from confab_core.errors import ConfabError, from_grpc
from confab_core.identity import (
    ROLE_AGENT,
    ROLE_MEMBER,
    Caller,
    current_caller,
    maybe_caller,
    reset_caller,
    set_caller,
)
from confab_core.ids import new_id


def test_caller_round_trips_through_a_document() -> None:
    caller = Caller("t1", "u1", frozenset({ROLE_MEMBER, ROLE_AGENT}), "Ünï", "u@example.com")
    assert Caller.from_doc(caller.to_doc()) == caller


@pytest.mark.parametrize(
    "doc", [None, "x", [], {"tid": "t"}, {"sub": "u"}, {"tid": "t", "sub": "u", "roles": "a"}]
)
def test_malformed_caller_documents(doc: object) -> None:
    with pytest.raises(errors.Unauthenticated) as info:
        Caller.from_doc(doc)
    assert info.value.code == "bad_caller"


def test_has_role() -> None:
    caller = Caller("t", "u", frozenset({ROLE_AGENT}))
    assert caller.has_role(ROLE_AGENT)
    assert caller.has_role(ROLE_MEMBER, ROLE_AGENT)
    assert not caller.has_role(ROLE_MEMBER)


def test_current_caller_needs_a_caller() -> None:
    token = set_caller(None)
    try:
        with pytest.raises(errors.Unauthenticated) as info:
            current_caller()
        assert info.value.code == "no_caller"
        assert maybe_caller() is None
    finally:
        reset_caller(token)


def test_current_caller_rejects_empty_ids() -> None:
    token = set_caller(Caller("", "u"))
    try:
        with pytest.raises(errors.Unauthenticated):
            current_caller()
    finally:
        reset_caller(token)


def test_set_and_reset_caller() -> None:
    caller = Caller("t", "u")
    token = set_caller(caller)
    assert current_caller() is caller
    reset_caller(token)
    assert maybe_caller() is None


@pytest.mark.asyncio
async def test_caller_is_per_task() -> None:
    seen: dict[str, str] = {}

    async def as_user(user: str) -> None:
        set_caller(Caller("t", user))
        await asyncio.sleep(0)
        seen[user] = current_caller().user_id

    await asyncio.gather(as_user("a"), as_user("b"))
    assert seen == {"a": "a", "b": "b"}
    assert maybe_caller() is None


@pytest.mark.parametrize(
    ("cls", "status", "http", "code"),
    [
        (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, 422, "invalid_argument"),
        (errors.NotFound, grpc.StatusCode.NOT_FOUND, 404, "not_found"),
        (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED, 403, "forbidden"),
        (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED, 401, "unauthenticated"),
        (errors.Conflict, grpc.StatusCode.ALREADY_EXISTS, 409, "conflict"),
        (
            errors.FailedPrecondition,
            grpc.StatusCode.FAILED_PRECONDITION,
            409,
            "failed_precondition",
        ),
        (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "rate_limited"),
        (errors.Unavailable, grpc.StatusCode.UNAVAILABLE, 503, "unavailable"),
    ],
)
def test_error_classes_map_both_ways(
    cls: type[ConfabError], status: grpc.StatusCode, http: int, code: str
) -> None:
    err = cls("boom")
    assert (err.grpc_status, err.http_status, err.code, err.message) == (status, http, code, "boom")
    assert cls("boom", "specific").code == "specific"
    back = from_grpc(status, "boom", "specific")
    assert type(back) is cls
    assert (back.message, back.code) == ("boom", "specific")
    assert from_grpc(status, "boom", None).code == code


def test_from_grpc_unmapped_statuses() -> None:
    timeout = from_grpc(grpc.StatusCode.DEADLINE_EXCEEDED, "", None)
    assert isinstance(timeout, errors.Unavailable)
    assert timeout.code == "upstream_timeout"
    cancelled = from_grpc(grpc.StatusCode.CANCELLED, "Locally cancelled", None)
    assert isinstance(cancelled, errors.Unavailable)
    assert cancelled.code == "upstream_cancelled" and cancelled.http_status == 503
    internal = from_grpc(grpc.StatusCode.INTERNAL, "", None)
    assert type(internal) is ConfabError
    assert internal.code == "internal"
    assert internal.message == "internal"
    assert from_grpc(grpc.StatusCode.INTERNAL, "x", "db_down").code == "db_down"


def test_fake_clock_moves_only_when_told() -> None:
    start = datetime(2030, 5, 1, tzinfo=UTC)
    clock = FakeClock(start)
    assert clock.now() == start
    assert clock.monotonic() == 0.0
    clock.advance(90)
    assert clock.now() == start + timedelta(seconds=90)
    assert clock.monotonic() == 90.0
    assert FakeClock().now().tzinfo is not None


def test_system_clock_is_aware_and_monotonic() -> None:
    clock = SystemClock()
    assert clock.now().tzinfo is not None
    first = clock.monotonic()
    assert clock.monotonic() >= first


def test_new_id_is_unique_and_url_safe() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.isalnum() and len(i) == 32 for i in ids)
