"""Ready-made pytest fixtures for the dev servers.

Import the ones you need into a conftest.py (``pytest_plugins`` only works in
the rootdir conftest)::

    from confab_devservers.pytest_plugin import kafka_server, mongo_server  # noqa: F401

``key_file`` is the conversation service's dev key file
(``CONVERSATION_KEY_FILE``), one per test session.

``s3_server`` (versitygw, its bucket created) and ``clamd_server`` (clamd with
the EICAR test signature) are started once per session, so once per xdist
worker; a test that stops one starts it again before it ends.

The child servers are started once per test module and shared; each test gets
them *running* (a test that stopped or killed a server gets it restarted,
with its data, for the next test). The in-process SMTP sink and fake OpenAI
server are fresh for every test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .clamd_server import ClamdServer
from .fake_openai import FakeOpenAI
from .kafka_server import KafkaServer
from .keys import dev_key_file
from .mongo_server import MongoServer
from .redis_server import RedisServer
from .s3_server import S3Server
from .smtp_sink import SmtpSink


@pytest.fixture(scope="module")
def _confab_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    server = KafkaServer(tmp_path_factory.mktemp("kafka"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kafka_server(_confab_kafka: KafkaServer) -> KafkaServer:
    _confab_kafka.start()
    return _confab_kafka


@pytest.fixture(scope="module")
def _confab_mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    server = MongoServer(tmp_path_factory.mktemp("mongo"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mongo_server(_confab_mongo: MongoServer) -> MongoServer:
    _confab_mongo.start()
    return _confab_mongo


@pytest.fixture(scope="module")
def _confab_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(_confab_redis: RedisServer) -> RedisServer:
    _confab_redis.start()
    return _confab_redis


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="session")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dev_key_file(tmp_path_factory.mktemp("keys") / "kek")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def clamd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClamdServer]:
    server = ClamdServer(tmp_path_factory.mktemp("clamd"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
