"""mTLS between services, over real loopback connections, and the settings that turn it on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic_settings import SettingsConfigDict

from confab_core.clock import SystemClock
from confab_core.grpcx.client import channel
from confab_core.grpcx.server import GrpcServer
from confab_core.grpcx.tls import GrpcTls
from confab_core.servicetoken import InternalAuth
from confab_core.settings import ServiceSettings, SettingsError, internal_auth, load_settings
from confab_devservers import CertFiles, DevCA

KEY = b"k" * 32


def tls(files: CertFiles) -> GrpcTls:
    return GrpcTls.from_files(files.ca_file, files.cert_file, files.key_file)


@dataclass
class Pki:
    ca: DevCA
    server: CertFiles
    client: CertFiles
    # Same names, signed by a CA the server does not trust.
    stranger: CertFiles


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = DevCA(tmp_path / "ca")
    other = DevCA(tmp_path / "other", name="Someone else's CA")
    return Pki(ca, ca.issue("probe"), ca.issue("tester"), other.issue("tester"))


@pytest_asyncio.fixture
async def target(pki: Pki) -> AsyncIterator[str]:
    server = GrpcServer(0, InternalAuth("probe", KEY, SystemClock(), tls(pki.server)), "127.0.0.1")
    port = await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


async def check(ch: grpc.aio.Channel) -> int:
    try:
        reply = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
        return int(reply.status)
    finally:
        await ch.close()


@pytest.mark.asyncio
async def test_a_peer_with_a_certificate_from_the_ca_is_served(pki: Pki, target: str) -> None:
    auth = InternalAuth("tester", KEY, SystemClock(), tls(pki.client))
    assert await check(channel(target, auth, "probe")) == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.asyncio
async def test_a_plaintext_client_is_refused(target: str) -> None:
    plain = channel(target, InternalAuth("tester", KEY, SystemClock()), "probe")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await check(plain)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.asyncio
async def test_a_client_without_a_certificate_is_refused(pki: Pki, target: str) -> None:
    # Trusts the server, but has nothing to show it: the handshake fails.
    creds = grpc.ssl_channel_credentials(root_certificates=pki.ca.ca_file.read_bytes())
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await check(grpc.aio.secure_channel(target, creds))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.asyncio
async def test_a_client_certificate_from_another_ca_is_refused(pki: Pki, target: str) -> None:
    stranger = tls(pki.stranger)
    # It trusts our CA, so only the server's check of its certificate can fail.
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.ca_file.read_bytes(),
        private_key=stranger.key,
        certificate_chain=stranger.cert,
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await check(grpc.aio.secure_channel(target, creds))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.asyncio
async def test_a_server_from_another_ca_is_not_trusted(pki: Pki, tmp_path: Path) -> None:
    impostor = GrpcServer(
        0, InternalAuth("probe", KEY, SystemClock(), tls(pki.stranger)), "127.0.0.1"
    )
    port = await impostor.start()
    try:
        auth = InternalAuth("tester", KEY, SystemClock(), tls(pki.client))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await check(channel(f"127.0.0.1:{port}", auth, "probe"))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await impostor.stop(0)


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONFAB_TLSDEMO_", extra="ignore", frozen=True)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("CONFAB_TLSDEMO_INTERNAL_KEY", "k" * 32)
    return monkeypatch


def test_no_tls_files_means_plaintext(env: pytest.MonkeyPatch) -> None:
    settings = load_settings(DemoSettings)
    assert internal_auth("demo", settings, SystemClock()).tls is None


def test_tls_files_from_settings_are_loaded_at_start(env: pytest.MonkeyPatch, pki: Pki) -> None:
    env.setenv("CONFAB_TLSDEMO_GRPC_TLS_CA_FILE", str(pki.server.ca_file))
    env.setenv("CONFAB_TLSDEMO_GRPC_TLS_CERT_FILE", str(pki.server.cert_file))
    env.setenv("CONFAB_TLSDEMO_GRPC_TLS_KEY_FILE", str(pki.server.key_file))
    auth = internal_auth("demo", load_settings(DemoSettings), SystemClock())
    assert auth.tls is not None
    assert auth.tls.cert == pki.server.cert_file.read_bytes()
    assert "BEGIN" not in repr(auth.tls)


def test_some_but_not_all_tls_files_is_refused(env: pytest.MonkeyPatch, pki: Pki) -> None:
    env.setenv("CONFAB_TLSDEMO_GRPC_TLS_CERT_FILE", str(pki.server.cert_file))
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings)
    assert "CONFAB_TLSDEMO_GRPC_TLS_CA_FILE" in str(info.value)


@pytest.mark.parametrize("broken", ["missing", "not-pem"])
def test_an_unreadable_tls_file_stops_the_service_naming_it(
    env: pytest.MonkeyPatch, pki: Pki, tmp_path: Path, broken: str
) -> None:
    bad = tmp_path / "tls.key"
    if broken == "not-pem":
        bad.write_text("nothing here")
    env.setenv("CONFAB_TLSDEMO_GRPC_TLS_CA_FILE", str(pki.server.ca_file))
    env.setenv("CONFAB_TLSDEMO_GRPC_TLS_CERT_FILE", str(pki.server.cert_file))
    env.setenv("CONFAB_TLSDEMO_GRPC_TLS_KEY_FILE", str(bad))
    settings = load_settings(DemoSettings)
    with pytest.raises(SettingsError) as info:
        internal_auth("demo", settings, SystemClock())
    assert str(bad) in str(info.value)


@pytest.mark.asyncio
async def test_probes_get_a_plaintext_health_port_and_nothing_else(pki: Pki) -> None:
    auth = InternalAuth("probe", KEY, SystemClock(), tls(pki.server))
    server = GrpcServer(0, auth, "127.0.0.1", health_port=0)
    server.add(lambda s: None, "confab.test.v1.Probe")
    await server.start()
    try:
        assert server.health_port > 0
        health_target = f"127.0.0.1:{server.health_port}"
        serving = health_pb2.HealthCheckResponse.SERVING
        assert await check(grpc.aio.insecure_channel(health_target)) == serving
        # Only health listens there: a business method is UNIMPLEMENTED, not served.
        plain = grpc.aio.insecure_channel(health_target)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await plain.unary_unary("/confab.test.v1.Probe/WhoAmI")(b"", timeout=5)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        finally:
            await plain.close()
    finally:
        await server.stop(0)
