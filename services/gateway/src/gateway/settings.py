from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from confab_core.settings import ServiceSettings
from gateway.fileurls import MIN_KEY_BYTES, URL_TTL_SECONDS
from gateway.ratelimit import Action, Limit


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    conversation_addr: str
    presence_addr: str
    notification_addr: str
    bot_addr: str
    kafka_bootstrap_servers: str
    redis_url: str
    # Exactly one of the two: HS256 for dev, RS256 from the IdP's JWKS in production.
    jwt_hs256_secret: SecretStr | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    host: str = "0.0.0.0"
    http_port: int = 8080
    # Names this process in presence and in its Kafka consumer group.
    gateway_id: str = ""
    # Origins (``scheme://host[:port]``) whose pages may call REST and open sockets
    # across origins; ``["*"]`` allows any. The page the gateway serves itself is
    # same-origin and always allowed; the empty default refuses every other origin.
    cors_origins: list[str] = []
    heartbeat_seconds: float = 20.0
    rpc_timeout_seconds: float = 10.0
    # How long a tenant's data keys (for opening sealed events) stay in memory; a
    # key rotated or shredded elsewhere is seen within this.
    key_cache_seconds: float = Field(default=300.0, gt=0)
    # The longest a tenant's chat settings stay cached without a change event
    # (a missed one, while this pod's consumer was away).
    settings_cache_seconds: float = Field(default=300.0, gt=0)
    # Calls per user and per tenant in a 10 s window, by action (JSON, e.g.
    # ``{"send": {"user": 50, "tenant": 5000}}``); actions left out keep the defaults
    # of gateway.ratelimit.DEFAULT_LIMITS.
    rate_limits: dict[Action, Limit] = {}
    # Tenant id -> the actions whose limits differ for that tenant (same shape). Kept
    # in settings, not in a database: limits are an operator's contract with a
    # tenant, reviewed and rolled out like any configuration, and a check then costs
    # no extra read.
    tenant_rate_limits: dict[str, dict[Action, Limit]] = {}
    max_body_bytes: int = 65536
    # Signs file download URLs (gateway/fileurls.py); at least 32 bytes, the same on
    # every pod (a URL issued by one is served by another).
    file_url_key: SecretStr
    # How long a file download URL works; short, as the URL is all a leaked link
    # would carry (with the user's token still needed).
    file_url_ttl_seconds: int = Field(default=URL_TTL_SECONDS, ge=1, le=3600)
    # File uploads and downloads stream for as long as the bytes take; a call
    # still open after this is cut.
    file_transfer_timeout_seconds: float = Field(default=3600.0, gt=0)
    # Presence changes are pushed through the user's conversations of at most this many
    # members (0: all). One change in a room of N costs N socket writes, so a few
    # thousand people connecting to a big channel would cost millions; clients of big
    # channels ask GET /presence for the people they show instead.
    presence_room_limit: int = 200

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin == "*":
                continue
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ValueError(f"{origin!r} is not an origin like https://chat.example.com")
        return origins

    @field_validator("file_url_key")
    @classmethod
    def _file_url_key(cls, key: SecretStr) -> SecretStr:
        if len(key.get_secret_value().encode()) < MIN_KEY_BYTES:
            raise ValueError(f"GATEWAY_FILE_URL_KEY needs at least {MIN_KEY_BYTES} bytes")
        return key

    @model_validator(mode="after")
    def _one_key_source(self) -> "GatewaySettings":
        if not self.jwt_hs256_secret and not self.jwt_jwks_url:
            raise ValueError("set GATEWAY_JWT_HS256_SECRET or GATEWAY_JWT_JWKS_URL")
        return self
