from pathlib import Path
from typing import Literal, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator
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
    # Who wraps the tenants' data keys: a key file (dev) or a KMS (AWS KMS API).
    key_provider: Literal["local", "aws-kms"] = "local"
    key_file: Path | None = Field(default=None, validate_default=True)
    kms_key_id: str = Field(default="", validate_default=True)
    kms_region: str = ""
    kms_endpoint_url: str | None = None
    # Unwrapped keys stay in memory this long; a rotation takes effect this
    # much later (at least the longest cache of any service reading keys).
    key_cache_seconds: float = 300.0
    key_rotation_delay_seconds: float = 600.0
    reencrypt_batch_size: int = 200
    reencrypt_poll_seconds: float = 5.0
    reencrypt_lease_seconds: float = 60.0
    # SLA timers: how often the scheduler looks for due ones (it is also woken
    # by every ticket change), how many a pass fires, and its lease.
    sla_poll_seconds: float = Field(default=1.0, gt=0)
    sla_batch_size: int = Field(default=200, gt=0)
    sla_lease_seconds: float = Field(default=10.0, gt=0)
    # Auto-assignment: the sweep of every tenant that has it on (between the
    # wake-ups of ticket changes and agents coming online), and its lease.
    assign_sweep_seconds: float = 30.0
    assign_lease_seconds: float = 15.0
    # How often the lease holder looks for tenants other replicas woke.
    assign_poll_seconds: float = 1.0
    # The analytics consumer (group conversation-analytics) folds the service's
    # own events into per-day aggregates; off, the aggregates stop growing.
    analytics_consumer: bool = True
    # The base URLs a tenant's bot agent may name instead of the bot service's
    # own (the service's API key goes with every request there); empty: none.
    # JSON, e.g. CONVERSATION_BOT_ALLOWED_BASE_URLS='["https://llm.example"]'.
    bot_allowed_base_urls: list[str] = []
    # Where file bytes live (docs/files.md#storage): GridFS in the MongoDB-wire
    # server, or an S3-compatible bucket. Presigned URLs use the public endpoint
    # (what clients reach), the service the other one.
    files_backend: Literal["gridfs", "s3"] = "gridfs"
    s3_endpoint_url: str | None = None
    s3_public_endpoint_url: str | None = None
    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    # Both or neither: without them boto's chain (environment, instance role).
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    # The virus scanner (clamd). No scanner refuses to start unless
    # CLAMD_REQUIRED=false, which leaves every new file pending for good.
    clamd_host: str = ""
    clamd_port: int = Field(default=3310, gt=0, lt=65536)
    clamd_timeout_seconds: float = Field(default=30.0, gt=0)
    clamd_required: bool = True

    @field_validator("bot_allowed_base_urls")
    @classmethod
    def _https_only(cls, urls: list[str]) -> list[str]:
        bad = [u for u in urls if not u.startswith("https://")]
        if bad:
            raise ValueError(f"https URLs only, not {bad[0]!r}")
        return urls

    @field_validator("key_file")
    @classmethod
    def _key_file_exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if info.data.get("key_provider") != "local":
            return value
        if value is None:
            raise ValueError("required with key_provider local")
        if not value.is_file():
            raise ValueError(f"{value} does not exist (the dev fleet writes it)")
        return value

    @field_validator("kms_key_id")
    @classmethod
    def _kms_key_named(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("key_provider") == "aws-kms" and not value:
            raise ValueError("required with key_provider aws-kms")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.key_provider == "aws-kms" and not self.kms_region:
            raise ValueError("key_provider aws-kms needs CONVERSATION_KMS_REGION")
        if self.key_rotation_delay_seconds < self.key_cache_seconds:
            raise ValueError("key_rotation_delay_seconds must be at least key_cache_seconds")
        if self.files_backend == "s3" and not self.s3_bucket:
            raise ValueError("files_backend s3 needs CONVERSATION_S3_BUCKET")
        if bool(self.s3_access_key_id) != bool(self.s3_secret_access_key):
            raise ValueError(
                "CONVERSATION_S3_ACCESS_KEY_ID and CONVERSATION_S3_SECRET_ACCESS_KEY go together"
            )
        if self.clamd_required and not self.clamd_host:
            raise ValueError(
                "CONVERSATION_CLAMD_HOST is required (or CONVERSATION_CLAMD_REQUIRED=false,"
                " which keeps new files pending)"
            )
        return self

    @property
    def s3_presign_endpoint_url(self) -> str | None:
        return self.s3_public_endpoint_url or self.s3_endpoint_url
