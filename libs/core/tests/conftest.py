"""Real MongoDB-wire and Kafka servers, started once per test run on free ports."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from confab_devservers import ChildServer, KafkaServer, MongoServer


def _shared_server(
    request: pytest.FixtureRequest, name: str, make: Callable[[], ChildServer]
) -> ChildServer:
    """One server per pytest run, shared by every conftest that asks for it by ``name``.

    libs/core and services/conversation run in one session; starting Kafka and
    MongoDB once for both saves several seconds. The registry lives on the run's
    config object, which both conftests see.
    """
    registry: dict[str, ChildServer] = request.config.__dict__.setdefault(
        "_confab_shared_test_servers", {}
    )
    server = registry.get(name)
    if server is None:
        server = make()
        server.start(timeout=180)
        # Throwaway data in a temp dir: no need to wait for a clean shutdown.
        request.config.add_cleanup(server.kill)
        registry[name] = server
    return server


@pytest.fixture(scope="session")
def mongo_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> MongoServer:
    server = _shared_server(request, "mongo", lambda: MongoServer(tmp_path_factory.mktemp("mongo")))
    assert isinstance(server, MongoServer)
    return server


@pytest.fixture(scope="session")
def kafka_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> KafkaServer:
    server = _shared_server(request, "kafka", lambda: KafkaServer(tmp_path_factory.mktemp("kafka")))
    assert isinstance(server, KafkaServer)
    return server
