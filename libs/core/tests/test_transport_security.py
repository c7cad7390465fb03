"""TLS and SASL for Kafka, MongoDB and Redis: what the settings and URLs turn into.

MongoDB and Redis need no code of ours: a TLS URL (``mongodb://...?tls=true&
tlsCAFile=...``, ``rediss://...?ssl_ca_certs=...``) goes straight to the driver,
so these tests pin that the URL alone is enough, and Redis is checked against a
real TLS listener. Kafka's options are built from typed settings.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic_settings import SettingsConfigDict
from redis.asyncio.connection import SSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError

from confab_core import mongo, redisx
from confab_core.kafka import PLAINTEXT, KafkaSecurity
from confab_core.settings import ServiceSettings, SettingsError, load_settings
from confab_devservers import CertFiles, DevCA, free_port


@pytest.fixture
def certs(tmp_path: Path) -> CertFiles:
    return DevCA(tmp_path / "ca").issue("backend")


def test_plaintext_kafka_by_default() -> None:
    assert PLAINTEXT.client_options() == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_kafka_verifies_the_broker_and_logs_in(certs: CertFiles) -> None:
    security = KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="confab-conversation",
        sasl_password="s3cret",
        ca_file=certs.ca_file,
    )
    options = security.client_options()
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "confab-conversation",
        "sasl_plain_password": "s3cret",
    }
    assert "s3cret" not in repr(security)


def test_ssl_kafka_with_a_client_certificate(certs: CertFiles) -> None:
    security = KafkaSecurity(
        protocol="SSL", ca_file=certs.ca_file, cert_file=certs.cert_file, key_file=certs.key_file
    )
    options = security.client_options()
    assert options["security_protocol"] == "SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert "sasl_mechanism" not in options


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"}, "username and password"),
        ({"protocol": "SSL", "sasl_username": "u"}, "protocol is SSL"),
        ({"protocol": "PLAINTEXT", "ca_file": Path("/ca.crt")}, "protocol is PLAINTEXT"),
        ({"protocol": "SSL", "cert_file": Path("/tls.crt")}, "cert and key"),
    ],
)
def test_inconsistent_kafka_security_is_refused(kwargs: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        KafkaSecurity(**kwargs)  # type: ignore[arg-type]


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONFAB_NETDEMO_", extra="ignore", frozen=True)


def test_kafka_security_comes_from_the_service_settings(
    monkeypatch: pytest.MonkeyPatch, certs: CertFiles
) -> None:
    monkeypatch.setenv("CONFAB_NETDEMO_INTERNAL_KEY", "k" * 32)
    monkeypatch.setenv("CONFAB_NETDEMO_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CONFAB_NETDEMO_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("CONFAB_NETDEMO_KAFKA_SASL_USERNAME", "bot")
    monkeypatch.setenv("CONFAB_NETDEMO_KAFKA_SASL_PASSWORD", "pw")
    monkeypatch.setenv("CONFAB_NETDEMO_KAFKA_SSL_CA_FILE", str(certs.ca_file))
    security = load_settings(DemoSettings).kafka_security()
    assert security == KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="bot",
        sasl_password="pw",
        ca_file=certs.ca_file,
    )
    # Without the password the service does not start, and says which settings.
    monkeypatch.delenv("CONFAB_NETDEMO_KAFKA_SASL_PASSWORD")
    with pytest.raises(SettingsError, match="CONFAB_NETDEMO_KAFKA_"):
        load_settings(DemoSettings)


def test_a_mongodb_tls_url_turns_tls_on_with_its_ca(certs: CertFiles) -> None:
    client = mongo.connect(f"mongodb://127.0.0.1:1/?tls=true&tlsCAFile={certs.ca_file}", "t")
    context = client.options.pool_options._ssl_context
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    plain = mongo.connect("mongodb://127.0.0.1:1/", "t")
    assert plain.options.pool_options._ssl_context is None


def test_a_rediss_url_turns_tls_on() -> None:
    client = redisx.connect("rediss://:pw@redis.example:6380/0?ssl_cert_reqs=required")
    assert client.connection_pool.connection_class is SSLConnection
    assert client.connection_pool.connection_kwargs["ssl_cert_reqs"] == "required"


@pytest.fixture
def tls_redis(tmp_path: Path, certs: CertFiles) -> Iterator[int]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (scripts/install-redis.sh)")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            *("--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"),
            *("--tls-cert-file", str(certs.cert_file), "--tls-key-file", str(certs.key_file)),
            *("--tls-ca-cert-file", str(certs.ca_file), "--tls-auth-clients", "no"),
            *("--save", "", "--appendonly", "no", "--dir", str(tmp_path), "--logfile", ""),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.asyncio
async def test_redis_over_tls_with_the_url_alone(tls_redis: int, certs: CertFiles) -> None:
    client = redisx.connect(f"rediss://127.0.0.1:{tls_redis}/0?ssl_ca_certs={certs.ca_file}")
    try:
        for _ in range(100):
            try:
                await client.set("k", "v")
                break
            except RedisConnectionError:
                await asyncio.sleep(0.05)
        assert await client.get("k") == "v"
    finally:
        await client.aclose()
