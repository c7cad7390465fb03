"""load_settings fails fast, naming the environment variable that is missing or wrong."""

from __future__ import annotations

import pytest
from pydantic_settings import SettingsConfigDict

from confab_core.settings import ServiceSettings, SettingsError, load_settings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONFAB_DEMO_", extra="ignore", frozen=True)

    mongo_url: str
    grpc_port: int = 50051


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MONGO_URL", "GRPC_PORT", "LOG_LEVEL", "METRICS_PORT", "INTERNAL_KEY"):
        monkeypatch.delenv(f"CONFAB_DEMO_{name}", raising=False)


def test_missing_required_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings)
    message = str(info.value)
    assert "DemoSettings" in message
    assert "CONFAB_DEMO_MONGO_URL" in message
    # Only the missing one is reported; defaults are fine.
    assert "CONFAB_DEMO_GRPC_PORT" not in message


def test_settings_error_stops_the_process() -> None:
    # A SystemExit subclass: an uncaught one ends the service at start.
    assert issubclass(SettingsError, SystemExit)


def test_invalid_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFAB_DEMO_INTERNAL_KEY", "k" * 32)
    monkeypatch.setenv("CONFAB_DEMO_MONGO_URL", "mongodb://x")
    monkeypatch.setenv("CONFAB_DEMO_GRPC_PORT", "not-a-number")
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings)
    assert "CONFAB_DEMO_GRPC_PORT" in str(info.value)
    assert "CONFAB_DEMO_MONGO_URL" not in str(info.value)


def test_every_service_needs_an_internal_key_of_32_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONFAB_DEMO_MONGO_URL", "mongodb://x")
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings)
    assert "CONFAB_DEMO_INTERNAL_KEY" in str(info.value)
    monkeypatch.setenv("CONFAB_DEMO_INTERNAL_KEY", "too-short")
    with pytest.raises(SettingsError) as info:
        load_settings(DemoSettings)
    assert "CONFAB_DEMO_INTERNAL_KEY" in str(info.value)


def test_loads_values_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFAB_DEMO_INTERNAL_KEY", "k" * 32)
    monkeypatch.setenv("CONFAB_DEMO_MONGO_URL", "mongodb://db:27017")
    monkeypatch.setenv("CONFAB_DEMO_GRPC_PORT", "6000")
    monkeypatch.setenv("CONFAB_DEMO_LOG_LEVEL", "debug")
    settings = load_settings(DemoSettings)
    assert settings.mongo_url == "mongodb://db:27017"
    assert settings.grpc_port == 6000
    assert settings.log_level == "debug"
    assert settings.metrics_port == 0
    assert settings.shutdown_grace_seconds == 10.0


def test_settings_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFAB_DEMO_INTERNAL_KEY", "k" * 32)
    monkeypatch.setenv("CONFAB_DEMO_MONGO_URL", "mongodb://db:27017")
    settings = load_settings(DemoSettings)
    with pytest.raises(ValueError):
        settings.mongo_url = "other"  # type: ignore[misc]
