import pytest

from bot.model import ClientPool, ModelError, OpenAIChat, model_from
from bot.settings import DEFAULT_SYSTEM_PROMPT, BotSettings
from confab_core.settings import SettingsError, load_settings


@pytest.fixture
def required(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("BOT_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("BOT_CONVERSATION_ADDR", "127.0.0.1:2")
    monkeypatch.setenv("BOT_INTERNAL_KEY", "k" * 32)
    for name in ("BOT_OPENAI_BASE_URL", "BOT_OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_leave_the_model_unconfigured(required: pytest.MonkeyPatch) -> None:
    settings = load_settings(BotSettings)
    assert settings.model == "gpt-4o-mini"
    assert settings.system_prompt == DEFAULT_SYSTEM_PROMPT
    assert settings.history_messages == 100
    assert settings.request_timeout_seconds == 30
    assert settings.grpc_port == 50053
    assert not settings.model_configured
    assert model_from(settings) is None


@pytest.mark.parametrize(
    ("url", "key"), [("http://127.0.0.1:9/v1", ""), ("", "sk-test"), (None, "sk-test")]
)
def test_both_url_and_key_are_needed(
    required: pytest.MonkeyPatch, url: str | None, key: str
) -> None:
    if url is not None:
        required.setenv("BOT_OPENAI_BASE_URL", url)
    required.setenv("BOT_OPENAI_API_KEY", key)
    assert model_from(load_settings(BotSettings)) is None


@pytest.mark.asyncio
async def test_configured_model(required: pytest.MonkeyPatch) -> None:
    required.setenv("BOT_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    required.setenv("BOT_OPENAI_API_KEY", "sk-test")
    settings = load_settings(BotSettings)
    assert "sk-test" not in repr(settings)
    model = model_from(settings)
    assert isinstance(model, OpenAIChat)
    await model.close()


def test_missing_values_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.delenv("BOT_CONVERSATION_ADDR", raising=False)
    with pytest.raises(SettingsError, match="BOT_CONVERSATION_ADDR"):
        load_settings(BotSettings)


def test_history_is_bounded_by_the_page_size(required: pytest.MonkeyPatch) -> None:
    required.setenv("BOT_HISTORY_MESSAGES", "500")
    with pytest.raises(SettingsError, match="BOT_HISTORY_MESSAGES"):
        load_settings(BotSettings)


def test_allowed_base_urls_are_a_json_list(required: pytest.MonkeyPatch) -> None:
    required.setenv("BOT_ALLOWED_BASE_URLS", '["https://llm.example/v1"]')
    assert load_settings(BotSettings).allowed_base_urls == ["https://llm.example/v1"]


@pytest.mark.asyncio
async def test_only_allowed_base_urls_get_a_client() -> None:
    pool = ClientPool(
        "http://127.0.0.1:9/v1/", "sk-test", 1.0, frozenset({"https://llm.example/v1"})
    )
    try:
        assert pool.client("") is pool.client("http://127.0.0.1:9/v1")
        assert pool.client("https://llm.example/v1/") is not pool.client("")
        with pytest.raises(ModelError, match="not allowed"):
            pool.client("https://elsewhere.example/v1")
    finally:
        await pool.close()
