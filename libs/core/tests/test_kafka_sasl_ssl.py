"""The Kafka helpers over SASL_SSL, against a real broker with a TLS listener.

A broker of its own (the shared one stays plaintext): a SASL_SSL listener with
SASL/PLAIN users, its certificate from a throwaway CA. Topics are made, records
produced and consumed through that listener only; a wrong password, or a client
that does not trust the CA, gets nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError

from confab_core.kafka import KafkaSecurity, Producer, TopicSpec, consume_forever, ensure_topics
from confab_devservers import CertFiles, DevCA, KafkaServer, free_port

DEADLINE = 60.0
USER, PASSWORD = "confab", "s3cret-on-the-wire"


class TlsBroker:
    def __init__(self, server: KafkaServer, port: int, certs: CertFiles) -> None:
        self.server = server
        self.bootstrap = f"127.0.0.1:{port}"
        self.certs = certs

    def security(self, password: str = PASSWORD, ca: Path | None = None) -> KafkaSecurity:
        return KafkaSecurity(
            protocol="SASL_SSL",
            sasl_mechanism="PLAIN",
            sasl_username=USER,
            sasl_password=password,
            ca_file=ca or self.certs.ca_file,
        )


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    workdir = tmp_path_factory.mktemp("kafka-tls")
    certs = DevCA(workdir / "ca").issue("kafka")
    keystore = workdir / "ca" / "kafka-keystore.pem"
    keystore.write_bytes(certs.key_file.read_bytes() + certs.cert_file.read_bytes())
    ports = KafkaServer(workdir)  # only to learn the ports the workdir will use
    tls_port = free_port()
    plain = f"PLAINTEXT://127.0.0.1:{ports.port}"
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{USER}" password="{PASSWORD}" user_{USER}="{PASSWORD}";'
    )
    server = KafkaServer(
        workdir,
        extra_properties={
            "listeners": f"{plain},CONTROLLER://127.0.0.1:{ports.controller_port},"
            f"SASL_SSL://127.0.0.1:{tls_port}",
            "advertised.listeners": f"{plain},SASL_SSL://127.0.0.1:{tls_port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
            "SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(keystore),
        },
    )
    server.start(timeout=180)
    try:
        yield TlsBroker(server, tls_port, certs)
    finally:
        server.kill()


@pytest.mark.asyncio
async def test_records_go_through_the_sasl_ssl_listener(broker: TlsBroker) -> None:
    topic = f"tls-{uuid.uuid4().hex[:8]}"
    security = broker.security()
    await ensure_topics(broker.bootstrap, [TopicSpec(topic, partitions=1)], security)
    producer = Producer(broker.bootstrap, security)
    try:
        await producer.send(topic, b"k", b"over tls")
    finally:
        await producer.stop()

    got: list[ConsumerRecord[bytes, bytes]] = []
    done = asyncio.Event()

    async def handle(record: ConsumerRecord[bytes, bytes]) -> None:
        got.append(record)
        done.set()

    task = asyncio.create_task(
        consume_forever(
            bootstrap=broker.bootstrap,
            topics=[topic],
            group_id=f"g-{uuid.uuid4().hex[:8]}",
            handler=handle,
            security=security,
        )
    )
    try:
        async with asyncio.timeout(DEADLINE):
            await done.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [r.value for r in got] == [b"over tls"]


@pytest.mark.asyncio
async def test_a_wrong_password_or_an_untrusted_broker_gets_nothing(
    broker: TlsBroker, tmp_path: Path
) -> None:
    topic = [TopicSpec(f"tls-{uuid.uuid4().hex[:8]}", partitions=1)]
    with pytest.raises(KafkaError):
        await ensure_topics(broker.bootstrap, topic, broker.security(password="guess"))
    other_ca = DevCA(tmp_path / "other").ca_file
    with pytest.raises((KafkaError, OSError)):
        await ensure_topics(broker.bootstrap, topic, broker.security(ca=other_ca))
