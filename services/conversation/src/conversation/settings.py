from pydantic_settings import SettingsConfigDict

from confab_core.settings import ServiceSettings


class ConversationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONVERSATION_", extra="ignore", frozen=True)

    mongo_url: str
    kafka_bootstrap_servers: str
    grpc_port: int = 50051
    mongo_database: str = "confab_conversation"
    relay_batch_size: int = 500
    relay_poll_seconds: float = 0.2
    relay_lease_seconds: float = 10.0
