from pydantic import Field
from pydantic_settings import SettingsConfigDict

from confab_core.settings import ServiceSettings


class PresenceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PRESENCE_", extra="ignore", frozen=True)

    redis_url: str
    kafka_bootstrap_servers: str
    # The conversation service, asked who may type where and who sees whom.
    conversation_addr: str
    rpc_timeout_seconds: float = Field(default=5.0, gt=0)
    # How long membership answers are remembered (presence/membership.py says why).
    membership_cache_seconds: float = Field(default=10.0, ge=0)
    grpc_port: int = 50052
    # Gateways heartbeat every ~20 s, so a connection survives two lost beats.
    connection_ttl_seconds: float = Field(default=60.0, gt=0)
    # A user whose last device disconnects stays present this long, so a quick
    # reconnect (a page reload, a network switch) publishes nothing. 0 turns
    # the grace off: the last disconnect goes offline at once.
    offline_grace_seconds: float = Field(default=10.0, ge=0)
    # Consumers show a typing indicator until now + this, unless renewed or stopped.
    typing_ttl_seconds: float = Field(default=6.0, gt=0)
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    sweep_batch_size: int = Field(default=500, gt=0)
    event_queue_size: int = Field(default=10_000, gt=0)
