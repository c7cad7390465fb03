"""The service refuses to start without its required settings."""

from __future__ import annotations

import pytest

from confab_core.settings import SettingsError, load_settings
from confab_devservers import dev_key_file
from conversation.settings import ConversationSettings

REQUIRED = (
    "CONVERSATION_MONGO_URL",
    "CONVERSATION_KAFKA_BOOTSTRAP_SERVERS",
    "CONVERSATION_INTERNAL_KEY",
)


KEY_SETTINGS = (
    "CONVERSATION_KEY_PROVIDER",
    "CONVERSATION_KEY_FILE",
    "CONVERSATION_KMS_KEY_ID",
    "CONVERSATION_KMS_REGION",
    "CONVERSATION_KEY_CACHE_SECONDS",
    "CONVERSATION_KEY_ROTATION_DELAY_SECONDS",
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        *REQUIRED,
        "CONVERSATION_GRPC_PORT",
        "CONVERSATION_RELAY_BATCH_SIZE",
        *KEY_SETTINGS,
    ):
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
    monkeypatch.setenv("CONVERSATION_KEY_FILE", str(dev_key_file()))
    monkeypatch.setenv("CONVERSATION_CLAMD_HOST", "clamd")
    settings = load_settings(ConversationSettings)
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.files_backend == "gridfs"
    assert (settings.clamd_port, settings.s3_region) == (3310, "us-east-1")
    assert settings.relay_batch_size == 7
    assert settings.grpc_port == 50051
    assert settings.mongo_database == "confab_conversation"


def _base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVERSATION_INTERNAL_KEY", "k" * 32)
    monkeypatch.setenv("CONVERSATION_MONGO_URL", "mongodb://db")
    monkeypatch.setenv("CONVERSATION_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("CONVERSATION_CLAMD_HOST", "clamd")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "CONVERSATION_KEY_FILE"),
        ({"CONVERSATION_KEY_FILE": "/nonexistent/kek"}, "CONVERSATION_KEY_FILE"),
        ({"CONVERSATION_KEY_PROVIDER": "vault"}, "CONVERSATION_KEY_PROVIDER"),
        ({"CONVERSATION_KEY_PROVIDER": "aws-kms"}, "CONVERSATION_KMS_KEY_ID"),
        (
            {"CONVERSATION_KEY_PROVIDER": "aws-kms", "CONVERSATION_KMS_KEY_ID": "alias/x"},
            "CONVERSATION_KMS_REGION",
        ),
    ],
)
def test_key_provider_settings_fail_fast(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    _base(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings(ConversationSettings)
    assert named in str(info.value)


def test_rotation_delay_covers_the_key_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    _base(monkeypatch)
    monkeypatch.setenv("CONVERSATION_KEY_FILE", str(dev_key_file()))
    monkeypatch.setenv("CONVERSATION_KEY_CACHE_SECONDS", "900")
    with pytest.raises(SettingsError, match="key_rotation_delay_seconds"):
        load_settings(ConversationSettings)


def test_aws_kms_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    _base(monkeypatch)
    monkeypatch.setenv("CONVERSATION_KEY_PROVIDER", "aws-kms")
    monkeypatch.setenv("CONVERSATION_KMS_KEY_ID", "alias/confab")
    monkeypatch.setenv("CONVERSATION_KMS_REGION", "eu-west-2")
    settings = load_settings(ConversationSettings)
    assert (settings.kms_key_id, settings.key_file) == ("alias/confab", None)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CONVERSATION_FILES_BACKEND": "s3"}, "CONVERSATION_S3_BUCKET"),
        ({"CONVERSATION_FILES_BACKEND": "ftp"}, "CONVERSATION_FILES_BACKEND"),
        ({"CONVERSATION_S3_ACCESS_KEY_ID": "AKIA"}, "CONVERSATION_S3_SECRET_ACCESS_KEY"),
        ({"CONVERSATION_CLAMD_HOST": ""}, "CONVERSATION_CLAMD_HOST"),
        ({"CONVERSATION_CLAMD_PORT": "0"}, "CONVERSATION_CLAMD_PORT"),
    ],
)
def test_files_settings_fail_fast(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    _base(monkeypatch)
    monkeypatch.setenv("CONVERSATION_KEY_FILE", str(dev_key_file()))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings(ConversationSettings)
    assert named in str(info.value)


def test_no_scanner_only_when_said(monkeypatch: pytest.MonkeyPatch) -> None:
    _base(monkeypatch)
    monkeypatch.setenv("CONVERSATION_KEY_FILE", str(dev_key_file()))
    monkeypatch.setenv("CONVERSATION_CLAMD_HOST", "")
    monkeypatch.setenv("CONVERSATION_CLAMD_REQUIRED", "false")
    monkeypatch.setenv("CONVERSATION_FILES_BACKEND", "s3")
    monkeypatch.setenv("CONVERSATION_S3_BUCKET", "files")
    monkeypatch.setenv("CONVERSATION_S3_ENDPOINT_URL", "http://s3.internal:9000")
    settings = load_settings(ConversationSettings)
    assert not settings.clamd_required
    assert settings.s3_presign_endpoint_url == "http://s3.internal:9000"
