"""The service refuses to start without its required settings."""

from __future__ import annotations

import pytest

from confab_core.settings import SettingsError, load_settings
from conversation.settings import ConversationSettings

REQUIRED = (
    "CONVERSATION_MONGO_URL",
    "CONVERSATION_KAFKA_BOOTSTRAP_SERVERS",
    "CONVERSATION_INTERNAL_KEY",
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*REQUIRED, "CONVERSATION_GRPC_PORT", "CONVERSATION_RELAY_BATCH_SIZE"):
        monkeypatch.delenv(name, raising=False)


def test_missing_settings_are_named() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(ConversationSettings)
    for name in REQUIRED:
        assert name in str(info.value)


def test_one_missing_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVERSATION_INTERNAL_KEY", "k" * 32)
    monkeypatch.setenv("CONVERSATION_MONGO_URL", "mongodb://db")
    with pytest.raises(SettingsError) as info:
        load_settings(ConversationSettings)
    assert "CONVERSATION_KAFKA_BOOTSTRAP_SERVERS" in str(info.value)
    assert "CONVERSATION_MONGO_URL" not in str(info.value)


def test_defaults_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVERSATION_INTERNAL_KEY", "k" * 32)
    monkeypatch.setenv("CONVERSATION_MONGO_URL", "mongodb://db")
    monkeypatch.setenv("CONVERSATION_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("CONVERSATION_RELAY_BATCH_SIZE", "7")
    settings = load_settings(ConversationSettings)
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.relay_batch_size == 7
    assert settings.grpc_port == 50051
    assert settings.mongo_database == "confab_conversation"
