from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from confab_core.settings import ServiceSettings

DEFAULT_SYSTEM_PROMPT = (
    "You are Confab Assistant, a helpful assistant inside a team chat. "
    "Answer clearly and concisely, in the language the user writes in. "
    "If you are not sure about something, say so instead of guessing."
)


class BotSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BOT_", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str
    conversation_addr: str
    # How long a tenant's data keys (for opening sealed events) stay in memory; a
    # key rotated or shredded elsewhere is seen within this.
    key_cache_seconds: float = Field(default=300.0, gt=0)
    # Both unset (or empty) means no model: the bot says so instead of answering.
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    model: str = "gpt-4o-mini"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    # The conversation service pages at most 100 messages per call.
    # The recent messages read per reply (the token budget decides how many
    # of them the prompt keeps verbatim; older ones go to the rolling memory).
    history_messages: int = Field(default=100, ge=1, le=100)
    summary_messages: int = Field(default=100, ge=1, le=100)
    request_timeout_seconds: float = 30.0
    # Base URLs an agent may name besides openai_base_url (the API key goes
    # with every request, so only hosts the operator trusts), as a JSON list.
    allowed_base_urls: list[str] = Field(default_factory=list)
    # Model calls: tries in all (tenacity; the SDK's own retries are off), and
    # the exponential backoff with full jitter between them.
    model_attempts: int = Field(default=3, ge=1, le=10)
    model_retry_initial_seconds: float = Field(default=0.5, ge=0)
    model_retry_max_seconds: float = Field(default=8.0, ge=0)
    # Agent defaults, for agents (and the implicit assistant) that leave them unset.
    token_budget: int = Field(default=4000, ge=256, le=128_000)
    max_reply_tokens: int = Field(default=800, ge=16, le=16_000)
    handoff_after_turns: int = Field(default=5, ge=1, le=100)
    # The rolling memory is refreshed once the older messages that no longer
    # fit the budget weigh this many tokens.
    memory_refresh_tokens: int = Field(default=1000, ge=1)
    # Upper bound on how stale a tenant's settings may be when a change event
    # was missed; the event normally refreshes them within a second.
    settings_cache_seconds: float = Field(default=60.0, gt=0)
    display_name: str = "Confab Assistant"
    grpc_port: int = 50053
    peer_timeout_seconds: float = 10.0
    # Replies stream token by token (bot.streaming); off for a model server that
    # cannot stream, and replies then arrive whole.
    stream_replies: bool = True
    # Streamed replies (bot.streaming): tokens are coalesced into one delta every
    # this many seconds or tokens, whichever comes first.
    stream_coalesce_seconds: float = Field(default=0.05, gt=0, le=5)
    stream_coalesce_tokens: int = Field(default=16, ge=1, le=1000)
    # Silence after the first token that ends the reply as failed.
    stream_idle_timeout_seconds: float = Field(default=20.0, gt=0)
    # Per attempt; an attempt without a first token by then is retried.
    stream_first_token_timeout_seconds: float = Field(default=30.0, gt=0)
    stream_attempts: int = Field(default=4, ge=1, le=10)
    stream_backoff_initial_seconds: float = Field(default=0.5, gt=0)
    stream_backoff_max_seconds: float = Field(default=8.0, gt=0)

    @property
    def model_configured(self) -> bool:
        return bool(
            self.openai_base_url
            and self.openai_api_key is not None
            and self.openai_api_key.get_secret_value()
        )
