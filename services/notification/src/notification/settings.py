from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from confab_core.settings import ServiceSettings


class NotificationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATION_", extra="ignore", frozen=True)

    mongo_url: str
    kafka_bootstrap_servers: str
    conversation_addr: str
    presence_addr: str
    smtp_host: str
    smtp_port: int
    smtp_from: str = "Confab <no-reply@confab.local>"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    # None: STARTTLS when the server offers it; True: require it; False: never.
    smtp_starttls: bool | None = None
    smtp_timeout_seconds: float = 10.0
    smtp_connect_attempts: int = 3
    mongo_database: str = "confab_notification"
    grpc_port: int = 50054
    peer_timeout_seconds: float = 10.0
