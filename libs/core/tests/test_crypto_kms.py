"""AwsKmsProvider against a real KMS-API server (local-kms, built from the Go module proxy)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from confab_core.crypto import AwsKmsProvider, UndecryptableError
from confab_devservers import KmsServer


@pytest.fixture(scope="module")
def kms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsServer]:
    server = KmsServer(Path(tmp_path_factory.mktemp("kms")))
    server.start(timeout=120)
    try:
        yield server
    finally:
        server.kill()


def _provider(kms: KmsServer, key_id: str) -> AwsKmsProvider:
    return AwsKmsProvider(
        key_id,
        region=kms.region,
        endpoint_url=kms.url,
        access_key_id="dev",
        secret_access_key="dev",
    )


@pytest.mark.parametrize("key_name", ["id", "alias"])
def test_wrap_unwrap_bound_to_tenant(kms: KmsServer, key_name: str) -> None:
    provider = _provider(kms, kms.key_id if key_name == "id" else kms.alias)
    key = bytes(range(32))

    async def body() -> None:
        wrapped = await provider.wrap("t1", key)
        assert key not in wrapped
        assert await provider.unwrap("t1", wrapped) == key
        with pytest.raises(UndecryptableError):
            await provider.unwrap("t2", wrapped)
        with pytest.raises(UndecryptableError):
            await provider.unwrap("t1", wrapped[:-1] + bytes([wrapped[-1] ^ 1]))

    asyncio.run(body())


def test_survives_a_restart(kms: KmsServer) -> None:
    provider = _provider(kms, kms.alias)
    wrapped = asyncio.run(provider.wrap("t1", b"k" * 32))
    kms.stop()
    kms.start(timeout=60)
    assert asyncio.run(_provider(kms, kms.alias).unwrap("t1", wrapped)) == b"k" * 32


def test_a_key_per_tenant_and_shredding_it(kms: KmsServer) -> None:
    provider = _provider(kms, "alias/confab-{tenant}")
    key = bytes(range(32))

    async def body() -> None:
        one = await provider.wrap("t1", key)
        other = await provider.wrap("t2", key)
        assert await provider.unwrap("t1", one) == key
        # Another tenant's KMS key refuses it even with a forged context.
        with pytest.raises(UndecryptableError):
            await _provider(kms, "alias/confab-t2").unwrap("t1", one)
        await provider.destroy("t1")
        # A backup's copy of the wrapped key no longer unwraps.
        with pytest.raises(UndecryptableError):
            await provider.unwrap("t1", one)
        assert await provider.unwrap("t2", other) == key
        await provider.destroy("never-seen")

    asyncio.run(body())


def test_a_per_tenant_key_needs_an_alias() -> None:
    with pytest.raises(ValueError, match="alias"):
        AwsKmsProvider("key-{tenant}", region="eu-west-2")
