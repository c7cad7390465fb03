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
    # Jobs (exports, erasures): records per step, and how long a runner's lease
    # on a job lasts without a step (a dead runner's job is taken over after it).
    job_batch_size: int = 500
    job_lease_seconds: float = 60.0
    job_poll_seconds: float = 2.0
    # Retention: how often a pass starts, and the pause between two batches of
    # deletes so live traffic keeps the database.
    retention_period_seconds: float = 3600.0
    retention_batch_size: int = 500
    retention_pause_seconds: float = 0.05
    retention_lease_seconds: float = 300.0
    # Where exports, erasures and retention reach the notification and presence
    # services; without them a job that needs them fails with peer_not_configured.
    notification_addr: str | None = None
    presence_addr: str | None = None
    peer_timeout_seconds: float = 30.0
