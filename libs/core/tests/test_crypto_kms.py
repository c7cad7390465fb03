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
