"""One trace follows a message from the gateway to every consumer.

All five services run in this process (their real ``main()``), sharing a
tracer provider whose spans land in memory, against real Kafka, SecantusDB and
Redis; the assertions walk the span tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import bot.app
import conversation.app
import gateway.app
import notification.app
import presence.app
from confab_core.auth import mint_hs256
from confab_devservers import (
    FakeOpenAI,
    KafkaServer,
    MongoServer,
    RedisServer,
    SmtpSink,
    dev_key_file,
    free_port,
)

SECRET = "trace-test-secret-that-is-long-enough"
TOPIC = "confab.conversation.events.v1"

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    # Set once per process; the services' own setup is disabled below.
    trace.set_tracer_provider(provider)
    return memory


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = Path(tmp_path_factory.mktemp("trace"))
    kafka, mongo, redis = KafkaServer(root / "k"), MongoServer(root / "m"), RedisServer(root / "r")
    smtp, openai = SmtpSink(), FakeOpenAI()
    for s in (kafka, mongo, redis):
        s.start()
    smtp.start()
    openai.start()
    yield {
        "kafka": kafka.bootstrap_servers,
        "mongo": mongo.url,
        "redis": redis.url,
        "smtp_port": str(smtp.port),
        "openai": openai.base_url,
    }
    openai.stop()
    smtp.stop()
    # Throwaway data: no need to wait for a clean shutdown.
    for s in (redis, mongo, kafka):
        s.kill()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fleet(exporter: InMemorySpanExporter, servers: dict[str, str]) -> AsyncIterator[str]:
    ports = {n: free_port() for n in ("conversation", "presence", "bot", "notification", "http")}
    addr = {n: f"127.0.0.1:{p}" for n, p in ports.items()}
    env = {
        "OTEL_SDK_DISABLED": "true",
        "CONVERSATION_MONGO_URL": servers["mongo"],
        "CONVERSATION_CLAMD_REQUIRED": "false",
        "CONVERSATION_KEY_FILE": str(dev_key_file()),
        "CONVERSATION_KAFKA_BOOTSTRAP_SERVERS": servers["kafka"],
        "CONVERSATION_GRPC_PORT": str(ports["conversation"]),
        "PRESENCE_REDIS_URL": servers["redis"],
        "PRESENCE_KAFKA_BOOTSTRAP_SERVERS": servers["kafka"],
        "PRESENCE_GRPC_PORT": str(ports["presence"]),
        "PRESENCE_CONVERSATION_ADDR": addr["conversation"],
        "BOT_KAFKA_BOOTSTRAP_SERVERS": servers["kafka"],
        "BOT_CONVERSATION_ADDR": addr["conversation"],
        "BOT_GRPC_PORT": str(ports["bot"]),
        "BOT_OPENAI_BASE_URL": servers["openai"],
        "BOT_OPENAI_API_KEY": "test",
        "NOTIFICATION_MONGO_URL": servers["mongo"],
        "NOTIFICATION_KAFKA_BOOTSTRAP_SERVERS": servers["kafka"],
        "NOTIFICATION_CONVERSATION_ADDR": addr["conversation"],
        "NOTIFICATION_PRESENCE_ADDR": addr["presence"],
        "NOTIFICATION_SMTP_HOST": "127.0.0.1",
        "NOTIFICATION_SMTP_PORT": servers["smtp_port"],
        "NOTIFICATION_GRPC_PORT": str(ports["notification"]),
        "GATEWAY_CONVERSATION_ADDR": addr["conversation"],
        "GATEWAY_PRESENCE_ADDR": addr["presence"],
        "GATEWAY_NOTIFICATION_ADDR": addr["notification"],
        "GATEWAY_BOT_ADDR": addr["bot"],
        "GATEWAY_KAFKA_BOOTSTRAP_SERVERS": servers["kafka"],
        "GATEWAY_REDIS_URL": servers["redis"],
        "GATEWAY_JWT_HS256_SECRET": SECRET,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_HTTP_PORT": str(ports["http"]),
        "GATEWAY_GATEWAY_ID": "trace",
    }
    for service in ("CONVERSATION", "PRESENCE", "BOT", "NOTIFICATION", "GATEWAY"):
        env[f"{service}_INTERNAL_KEY"] = "trace-tests-internal-key-of-32-bytes"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mains = (conversation.app, presence.app, bot.app, notification.app, gateway.app)
        tasks = [asyncio.create_task(m.main()) for m in mains]
        url = f"http://127.0.0.1:{ports['http']}"
        try:
            await _ready(url, tasks)
            yield url
        finally:
            for task in reversed(tasks):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception, SystemExit):
                    await task


async def _ready(url: str, tasks: list[asyncio.Task[None]]) -> None:
    deadline = asyncio.get_running_loop().time() + 60
    async with httpx.AsyncClient() as client:
        while True:
            for task in tasks:
                if task.done():
                    task.result()
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("fleet not ready in 60 s")
            await asyncio.sleep(0.2)


def _consumers(spans: list[ReadableSpan], trace_id: int) -> dict[str, ReadableSpan]:
    return {
        str(s.attributes.get("messaging.consumer.group.name")): s
        for s in spans
        if s.context.trace_id == trace_id
        and s.kind == SpanKind.CONSUMER
        and s.attributes is not None
    }


async def test_one_trace_from_rest_send_to_every_consumer(
    fleet: str, exporter: InMemorySpanExporter
) -> None:
    token = mint_hs256(SECRET, tenant_id="t-trace", user_id="alice", email="a@example.com")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=f"{fleet}/api/v1", headers=headers) as api:
        conv = (await api.post("/conversations", json={"kind": "ai_assistant"})).json()
        conv_id = conv["conversation"]["id"]
        exporter.clear()
        resp = await api.post(
            f"/conversations/{conv_id}/messages",
            json={"text": "trace me", "client_msg_id": uuid.uuid4().hex},
        )
        assert resp.status_code == 201

    spans = exporter.get_finished_spans()
    root = next(
        s
        for s in spans
        if s.kind == SpanKind.SERVER and s.name.startswith("POST /api/v1/conversations")
    )
    trace_id = root.context.trace_id
    wanted = {"gateway-trace", "bot", "notification"}
    deadline = asyncio.get_running_loop().time() + 30
    while not wanted <= set(_consumers(exporter.get_finished_spans(), trace_id)):
        assert asyncio.get_running_loop().time() < deadline, "consumers never saw the event"
        await asyncio.sleep(0.1)
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in spans}

    def parent(span: ReadableSpan) -> ReadableSpan:
        assert span.parent is not None, f"{span.name} has no parent"
        return by_id[span.parent.span_id]

    def ancestors(span: ReadableSpan) -> list[ReadableSpan]:
        out = []
        while span.parent is not None:
            span = parent(span)
            out.append(span)
        return out

    assert root.parent is None
    assert root.name == "POST /api/v1/conversations/{conversation_id}/messages"

    # The bot's reply continues the same trace, so pick the spans by lineage.
    def children(span: ReadableSpan) -> list[ReadableSpan]:
        return [s for s in spans if s.parent and s.parent.span_id == span.context.span_id]

    grpc_client = next(
        s
        for s in spans
        if s.kind == SpanKind.CLIENT
        and "SendMessage" in s.name
        and root in ancestors(s)
        and not any(a.kind == SpanKind.CONSUMER for a in ancestors(s))
    )
    (grpc_server,) = [s for s in children(grpc_client) if s.kind == SpanKind.SERVER]
    (send,) = [s for s in children(grpc_server) if s.name == "confab.message.send"]
    assert send.attributes is not None and send.attributes["confab.tenant_id"] == "t-trace"
    # A publish the broker did not acknowledge is retried under a new span.
    publishes = [s for s in children(send) if s.kind == SpanKind.PRODUCER]
    assert publishes
    assert {p.name for p in publishes} == {f"{TOPIC} publish"}

    # Each group consumed the event under one of those publishes, and did its
    # own work under that consume (the bot's reply then starts a new branch).
    work = {
        "gateway-trace": "confab.gateway.fanout",
        "bot": "confab.bot.reply",
        "notification": "confab.notification.handle",
    }
    for group, name in work.items():
        consumed = [
            s
            for s in spans
            if s.kind == SpanKind.CONSUMER
            and s.attributes is not None
            and s.attributes.get("messaging.consumer.group.name") == group
            and parent(s) in publishes
        ]
        assert consumed, group
        assert any(c.name == name for c in children(consumed[0])), (group, name)
