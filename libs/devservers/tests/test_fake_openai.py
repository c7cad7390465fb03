from __future__ import annotations

import itertools
import time
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from confab_devservers import FakeOpenAI


def _client(fake: FakeOpenAI, **kwargs: Any) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=fake.base_url, api_key="test", **kwargs)


@pytest.mark.asyncio
async def test_non_streaming_echo(fake_openai: FakeOpenAI) -> None:
    client = _client(fake_openai)
    resp = await client.chat.completions.create(
        model="gpt-test",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "hello there"},
        ],
    )
    assert resp.choices[0].message.content == "echo: hello there"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "gpt-test"
    assert resp.usage is not None and resp.usage.completion_tokens == 3
    assert fake_openai.requests[-1]["messages"][-1] == {"role": "user", "content": "hello there"}
    assert fake_openai.request_log[-1].headers["authorization"] == "Bearer test"
    await client.close()


@pytest.mark.asyncio
async def test_streaming_echo(fake_openai: FakeOpenAI) -> None:
    client = _client(fake_openai)
    stream = await client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "stream me  please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas: list[str] = []
    finish: list[str | None] = []
    usage = None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                deltas.append(choice.delta.content)
            finish.append(choice.finish_reason)
    assert "".join(deltas) == "echo: stream me  please"
    assert len(deltas) > 1
    assert finish[-1] == "stop"
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert fake_openai.requests[-1]["stream"] is True
    await client.close()


@pytest.mark.asyncio
async def test_stream_helper_accumulates(fake_openai: FakeOpenAI) -> None:
    client = _client(fake_openai)
    async with client.chat.completions.stream(
        model="gpt-test", messages=[{"role": "user", "content": "abc"}]
    ) as stream:
        async for _event in stream:
            pass
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == "echo: abc"
    await client.close()


@pytest.mark.asyncio
async def test_content_parts_and_custom_reply(fake_openai: FakeOpenAI) -> None:
    client = _client(fake_openai)
    resp = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": [{"type": "text", "text": "parts"}]}]
    )
    assert resp.choices[0].message.content == "echo: parts"

    fake_openai.set_reply(lambda body: f"{len(body['messages'])} messages, model {body['model']}")
    resp = await client.chat.completions.create(
        model="m2", messages=[{"role": "user", "content": "x"}]
    )
    assert resp.choices[0].message.content == "1 messages, model m2"

    fake_openai.set_reply(None)
    resp = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "back"}]
    )
    assert resp.choices[0].message.content == "echo: back"
    await client.close()


@pytest.mark.asyncio
async def test_models(fake_openai: FakeOpenAI) -> None:
    client = _client(fake_openai)
    models = [m.id async for m in client.models.list()]
    assert models == [fake_openai.model]
    await client.close()


@pytest.mark.asyncio
async def test_fail_next_without_retries(fake_openai: FakeOpenAI) -> None:
    client = _client(fake_openai, max_retries=0)
    fake_openai.fail_next(1, status=503)
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503

    fake_openai.fail_next(1, status=429, message="slow down")
    with pytest.raises(openai.RateLimitError, match="slow down"):
        await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])

    fake_openai.fail_next(1, status=401)
    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])

    resp = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "ok"}]
    )
    assert resp.choices[0].message.content == "echo: ok"
    assert [r.status for r in fake_openai.request_log] == [503, 429, 401, 200]
    await client.close()


@pytest.mark.asyncio
async def test_sdk_retries_consume_failures(fake_openai: FakeOpenAI) -> None:
    client = _client(fake_openai, max_retries=2)
    fake_openai.fail_next(2, status=500)
    resp = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "retry"}]
    )
    assert resp.choices[0].message.content == "echo: retry"
    assert [r.status for r in fake_openai.request_log] == [500, 500, 200]

    fake_openai.fail_next(1, status=500)
    stream = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "s"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: s"
    await client.close()


@pytest.mark.asyncio
async def test_reset(fake_openai: FakeOpenAI) -> None:
    fake_openai.set_reply(lambda _body: "custom")
    fake_openai.fail_next(5)
    fake_openai.reset()
    client = _client(fake_openai, max_retries=0)
    resp = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "y"}]
    )
    assert resp.choices[0].message.content == "echo: y"
    assert len(fake_openai.requests) == 1
    await client.close()


@pytest.mark.asyncio
async def test_chunk_delay_slows_the_stream(fake_openai: FakeOpenAI) -> None:
    fake_openai.set_chunk_delay(0.05)
    client = _client(fake_openai)
    started = time.monotonic()
    stream = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "one two three"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: one two three"
    assert time.monotonic() - started >= 0.2  # 4 word deltas + finish chunk, 50 ms apart
    await client.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"model": ""}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": 7}]}, "messages[0].content"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 1.5}, "max_completion_tokens"),
        ({"stream": "yes"}, "stream"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
async def test_requests_are_validated_like_the_real_api(
    fake_openai: FakeOpenAI, changes: dict[str, Any], param: str
) -> None:
    client = _client(fake_openai, max_retries=0)
    body: dict[str, Any] = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        **changes,
    }
    with pytest.raises(openai.BadRequestError) as info:
        await client.post("/chat/completions", cast_to=dict, body=body)
    assert info.value.status_code == 400
    assert isinstance(info.value.body, dict) and info.value.body["param"] == param
    assert fake_openai.request_log[-1].status == 400
    # The bounds themselves are fine.
    ok = await client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "x"}],
        temperature=2,
        max_tokens=1,
        max_completion_tokens=1,
    )
    assert ok.choices[0].message.content == "echo: x"
    await client.close()


@pytest.mark.asyncio
async def test_429_tells_the_client_when_to_retry(fake_openai: FakeOpenAI) -> None:
    client = _client(fake_openai, max_retries=0)
    fake_openai.fail_next(1, status=429, retry_after=3)
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], stream=True
        )
    assert info.value.response.headers["retry-after"] == "3"
    assert info.value.response.headers["retry-after-ms"] == "3000"
    await client.close()


@pytest.mark.asyncio
async def test_a_cut_stream_breaks_mid_body_without_done(fake_openai: FakeOpenAI) -> None:
    client = _client(fake_openai, max_retries=0)
    fake_openai.cut_next(after_chunks=3)
    stream = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "a b c d e f"}], stream=True
    )
    seen: list[str] = []
    # The SDK wraps the broken body (httpx.RemoteProtocolError) as a connection error.
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            seen += [c.delta.content or "" for c in chunk.choices]
    # The role chunk and two words, then nothing: no finish_reason, no [DONE].
    assert "".join(seen) == "echo: a "
    # Only the next request was cut.
    stream = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "whole"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: whole"
    await client.close()


@pytest.mark.asyncio
async def test_a_slow_first_token_then_full_speed(fake_openai: FakeOpenAI) -> None:
    client = _client(fake_openai, max_retries=0)
    fake_openai.set_slow(first_token=0.3, n=1)
    for expect_slow in (True, False):
        started = time.monotonic()
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "one two"}], stream=True
        )
        first_at = None
        async for chunk in stream:
            if first_at is None and chunk.choices and chunk.choices[0].delta.content:
                first_at = time.monotonic() - started
        assert first_at is not None
        assert (first_at >= 0.3) is expect_slow
    await client.close()


@pytest.mark.asyncio
async def test_per_token_delay_paces_every_token(fake_openai: FakeOpenAI) -> None:
    client = _client(fake_openai, max_retries=0)
    fake_openai.set_slow(per_token=0.1)
    stream = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "a b c"}], stream=True
    )
    arrivals: list[float] = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert len(gaps) == 3 and all(g >= 0.09 for g in gaps)
    await client.close()
