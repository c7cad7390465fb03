"""Encryption in transit and sealed events, on the running fleet (gRPC over mTLS).

A message still reaches the other member's socket; meanwhile nothing on the
events topic, read raw from the broker, holds its text, and the services' gRPC
ports refuse anyone without a certificate from the fleet's CA.
"""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from aiokafka import AIOKafkaConsumer
from confab_devfleet import Fleet
from grpc_health.v1 import health_pb2, health_pb2_grpc

from confab_core.kafka import CONVERSATION_EVENTS_TOPIC, EVENT_ID_HEADER, TENANT_ID_HEADER
from confab_devservers import DevCA

from .conftest import TENANT_A

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def raw_topic(bootstrap: str, conversation_id: str, at_least: int) -> list[tuple]:
    """(value, headers) of the conversation's records, straight from the broker's log."""
    consumer = AIOKafkaConsumer(
        CONVERSATION_EVENTS_TOPIC,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    got: list[tuple] = []
    try:
        async with asyncio.timeout(30):
            while len(got) < at_least:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    got.extend(
                        (r.value or b"", dict(r.headers))
                        for r in records
                        if r.key == conversation_id.encode()
                    )
    finally:
        await consumer.stop()
    return got


async def test_a_delivered_message_crossed_kafka_sealed(fleet: Fleet, users, sockets) -> None:
    alice, bob = uid("alice"), uid("bob")
    secret = f"sealed-{uuid.uuid4().hex}"
    bob_socket = await sockets(TENANT_A, bob)
    api = users(TENANT_A, alice)
    conv = await api.create("group", [bob], f"{secret} title")
    resp = await api.send(conv["id"], f"{secret} text", uid("m"))
    assert resp.status_code == 201, resp.text
    got = await bob_socket.wait_for("message:new", lambda m: m["conversation_id"] == conv["id"])
    assert got["text"] == f"{secret} text"

    records = await raw_topic(fleet.kafka.bootstrap_servers, conv["id"], 2)
    assert not [value for value, _ in records if secret.encode() in value]
    for _, headers in records:
        assert headers[TENANT_ID_HEADER] == TENANT_A.encode()
        assert headers[EVENT_ID_HEADER]


async def check(ch: grpc.aio.Channel) -> None:
    try:
        await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
    finally:
        await ch.close()


async def test_grpc_ports_refuse_clients_without_the_fleets_certificate(
    fleet: Fleet, tmp_path
) -> None:
    assert fleet.ca is not None, "the e2e fleet runs gRPC over mTLS"
    stranger = DevCA(tmp_path / "stranger").issue("intruder")
    for name, svc in fleet.services.items():
        # In the clear.
        with pytest.raises(grpc.aio.AioRpcError) as plain:
            await check(grpc.aio.insecure_channel(svc.address))
        assert plain.value.code() == grpc.StatusCode.UNAVAILABLE, name
        # Over TLS, trusting the fleet's CA, with a certificate the fleet's CA did not sign.
        creds = grpc.ssl_channel_credentials(
            root_certificates=fleet.ca.ca_file.read_bytes(),
            private_key=stranger.key_file.read_bytes(),
            certificate_chain=stranger.cert_file.read_bytes(),
        )
        with pytest.raises(grpc.aio.AioRpcError) as forged:
            await check(grpc.aio.secure_channel(svc.address, creds))
        assert forged.value.code() == grpc.StatusCode.UNAVAILABLE, name
