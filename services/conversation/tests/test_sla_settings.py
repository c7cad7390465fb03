"""The SLA scheduler's settings fail fast on nonsense."""

from __future__ import annotations

import pytest

from confab_core.settings import SettingsError, load_settings
from confab_devservers import dev_key_file
from conversation.settings import ConversationSettings


@pytest.fixture(autouse=True)
def _base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVERSATION_INTERNAL_KEY", "k" * 32)
    monkeypatch.setenv("CONVERSATION_MONGO_URL", "mongodb://db")
    monkeypatch.setenv("CONVERSATION_CLAMD_REQUIRED", "false")
    monkeypatch.setenv("CONVERSATION_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("CONVERSATION_KEY_FILE", str(dev_key_file()))


def test_defaults_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVERSATION_SLA_POLL_SECONDS", "0.25")
    settings = load_settings(ConversationSettings)
    assert settings.sla_poll_seconds == 0.25
    assert settings.sla_batch_size == 200
    assert settings.sla_lease_seconds == 10.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONVERSATION_SLA_POLL_SECONDS", "0"),
        ("CONVERSATION_SLA_BATCH_SIZE", "-1"),
        ("CONVERSATION_SLA_LEASE_SECONDS", "soon"),
    ],
)
def test_bad_values_stop_the_start(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings(ConversationSettings)
    assert name in str(info.value)
