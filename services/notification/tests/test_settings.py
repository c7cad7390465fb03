import pytest

from confab_core.settings import SettingsError, load_settings
from notification.settings import NotificationSettings

REQUIRED = {
    "NOTIFICATION_MONGO_URL": "mongodb://127.0.0.1:1",
    "NOTIFICATION_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:2",
    "NOTIFICATION_CONVERSATION_ADDR": "127.0.0.1:3",
    "NOTIFICATION_PRESENCE_ADDR": "127.0.0.1:4",
    "NOTIFICATION_SMTP_HOST": "127.0.0.1",
    "NOTIFICATION_SMTP_PORT": "2525",
    "NOTIFICATION_INTERNAL_KEY": "k" * 32,
}


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in REQUIRED.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(NotificationSettings)
    assert settings.smtp_port == 2525
    assert settings.smtp_from == "Confab <no-reply@confab.local>"
    assert settings.mongo_database == "confab_notification"
    assert settings.grpc_port == 50054


def test_missing_values_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in REQUIRED.items():
        if key != "NOTIFICATION_SMTP_HOST":
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("NOTIFICATION_SMTP_HOST", raising=False)
    with pytest.raises(SettingsError, match="NOTIFICATION_SMTP_HOST"):
        load_settings(NotificationSettings)
