from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from confab_core.settings import ServiceSettings


class NotificationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATION_", extra="ignore", frozen=True)

    mongo_url: str
    kafka_bootstrap_servers: str
    conversation_addr: str
    presence_addr: str
    # How long a tenant's data keys (opening sealed events, sealing what is stored)
    # stay in memory; a key rotated or shredded elsewhere is seen within this.
    key_cache_seconds: float = Field(default=300.0, gt=0)
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
