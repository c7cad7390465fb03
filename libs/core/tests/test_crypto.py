"""The at-rest crypto library: sealing, associated data, key ids, providers, blind tokens."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from confab_core.clock import FakeClock
from confab_core.crypto import (
    CachingKeySource,
    DataKey,
    KeyFileError,
    KeysShreddedError,
    LocalKeyFileProvider,
    TenantKeys,
    UndecryptableError,
    aad,
    blind_tokens,
    blob_key_id,
    seal,
    seal_str,
    unseal,
    unseal_str,
    write_local_key_file,
)
from confab_devservers import dev_key_file


def _keys(tenant: str = "t1", *ids: str) -> TenantKeys:
    made = [DataKey.generate(i) for i in (ids or ("k1",))]
    return TenantKeys(tenant, made[-1], {k.key_id: k for k in made}, b"s" * 32)


def test_round_trip_and_key_id() -> None:
    keys = _keys("t1", "k1", "k2")
    where = aad("t1", "messages", "m1", "text")
    blob = seal_str(keys.current, "héllo", where)
    assert blob_key_id(blob) == "k2"
    assert b"h\xc3\xa9llo" not in blob
    assert unseal_str(keys, blob, where) == "héllo"


def test_old_key_still_opens_after_rotation() -> None:
    keys = _keys("t1", "k1", "k2")
    where = aad("t1", "messages", "m1", "text")
    old = seal(keys.by_id["k1"], b"x", where)
    assert blob_key_id(old) == "k1"
    assert unseal(keys, old, where) == b"x"


def test_nonces_differ() -> None:
    keys = _keys()
    where = aad("t1", "users", "u1", "email")
    assert seal(keys.current, b"same", where) != seal(keys.current, b"same", where)


@pytest.mark.parametrize(
    "other",
    [
        aad("t2", "messages", "m1", "text"),
        aad("t1", "files", "m1", "text"),
        aad("t1", "messages", "m2", "text"),
        aad("t1", "messages", "m1", "title"),
    ],
)
def test_ciphertext_copied_elsewhere_fails(other: bytes) -> None:
    keys = _keys()
    blob = seal(keys.current, b"secret", aad("t1", "messages", "m1", "text"))
    with pytest.raises(UndecryptableError):
        unseal(keys, blob, other)


def test_aad_parts_cannot_blur() -> None:
    assert aad("t1", "ab", "c", "f") != aad("t1", "a", "bc", "f")


@pytest.mark.parametrize("index", [0, 1, 3, 10, 20, -1])
def test_tampering_is_caught(index: int) -> None:
    keys = _keys()
    where = aad("t1", "messages", "m1", "text")
    blob = bytearray(seal(keys.current, b"secret message", where))
    blob[index] ^= 0x01
    with pytest.raises(UndecryptableError):
        unseal(keys, bytes(blob), where)


def test_unknown_key_and_garbage() -> None:
    where = aad("t1", "messages", "m1", "text")
    blob = seal(DataKey.generate("gone"), b"x", where)
    with pytest.raises(UndecryptableError, match="gone"):
        unseal(_keys(), blob, where)
    for junk in (b"", b"\x01", b"\x02abc", b"\x01\x02k1short"):
        with pytest.raises(UndecryptableError):
            unseal(_keys(), junk, where)


def test_another_tenants_key_of_same_id_fails() -> None:
    where = aad("t1", "messages", "m1", "text")
    blob = seal(_keys("t1").current, b"x", where)
    with pytest.raises(UndecryptableError):
        unseal(_keys("t1"), blob, where)


def test_data_key_checks_and_hides_key() -> None:
    with pytest.raises(ValueError):
        DataKey("k", b"short")
    with pytest.raises(ValueError):
        DataKey("", b"k" * 32)
    assert "kkkk" not in repr(DataKey("k", b"k" * 32))


def test_blind_tokens() -> None:
    key = b"a" * 32
    tokens = blind_tokens(key, ["Café", "cafe", "", "  ", "bar"])
    assert len(tokens) == 2
    assert tokens == blind_tokens(key, ["cafe", "BAR"])
    assert tokens != blind_tokens(b"b" * 32, ["cafe", "bar"])
    assert all("caf" not in t and "bar" not in t for t in tokens)


def test_local_key_file(tmp_path: Path) -> None:
    path = tmp_path / "dev" / "kek"
    with pytest.raises(KeyFileError, match="does not exist"):
        LocalKeyFileProvider(path)
    write_local_key_file(path)
    first = path.read_text()
    write_local_key_file(path)
    assert path.read_text() == first, "an existing key file is never replaced"
    assert path.stat().st_mode & 0o777 == 0o600
    provider = LocalKeyFileProvider(path)
    wrapped = asyncio.run(provider.wrap("t1", b"k" * 32))
    assert b"k" * 32 not in wrapped
    assert asyncio.run(LocalKeyFileProvider(path).unwrap("t1", wrapped)) == b"k" * 32
    with pytest.raises(UndecryptableError):
        asyncio.run(provider.unwrap("t2", wrapped))
    other = tmp_path / "other"
    write_local_key_file(other)
    with pytest.raises(UndecryptableError):
        asyncio.run(LocalKeyFileProvider(other).unwrap("t1", wrapped))


@pytest.mark.parametrize("content", ["not base64!", base64.b64encode(b"short").decode()])
def test_bad_key_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "kek"
    path.write_text(content)
    with pytest.raises(KeyFileError):
        LocalKeyFileProvider(path)


class _Counting:
    def __init__(self) -> None:
        self.calls = 0
        self.shredded: set[str] = set()

    async def keys(self, tenant_id: str) -> TenantKeys:
        self.calls += 1
        await asyncio.sleep(0)
        if tenant_id in self.shredded:
            raise KeysShreddedError(tenant_id)
        return _keys(tenant_id)


def test_caching_key_source() -> None:
    async def body() -> None:
        inner = _Counting()
        clock = FakeClock()
        cache = CachingKeySource(inner, ttl_seconds=60, clock=clock)
        got = await asyncio.gather(*(cache.keys("t1") for _ in range(10)))
        assert inner.calls == 1, "concurrent misses share one fetch"
        assert all(g is got[0] for g in got)
        clock.advance(30)
        await cache.keys("t1")
        assert inner.calls == 1
        clock.advance(31)
        await cache.keys("t1")
        assert inner.calls == 2
        cache.invalidate("t1")
        inner.shredded.add("t1")
        for _ in range(2):
            with pytest.raises(KeysShreddedError):
                await cache.keys("t1")
        assert inner.calls == 4, "a refusal is not cached"

    asyncio.run(body())


def test_the_dev_fleets_key_file_is_one_the_provider_reads(tmp_path: Path) -> None:
    path = dev_key_file(tmp_path / "fleet" / "kek")
    assert dev_key_file(path).read_text() == path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    provider = LocalKeyFileProvider(path)
    wrapped = asyncio.run(provider.wrap("t", b"k" * 32))
    assert asyncio.run(provider.unwrap("t", wrapped)) == b"k" * 32
