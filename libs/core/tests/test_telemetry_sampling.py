"""Spans are recorded only when something exports them; trace ids exist either way."""

from __future__ import annotations

import pytest

from confab_core.telemetry import build_provider


def test_no_exporter_records_nothing_but_keeps_trace_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    provider = build_provider("probe")
    assert provider is not None
    span = provider.get_tracer("t").start_span("work")
    assert not span.is_recording()
    assert span.get_span_context().trace_id != 0
    provider.shutdown()


def test_an_exporter_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    provider = build_provider("probe")
    assert provider is not None
    span = provider.get_tracer("t").start_span("work")
    assert span.is_recording()
    provider.shutdown()


def test_an_explicit_sampler_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    provider = build_provider("probe")
    assert provider is not None
    assert provider.get_tracer("t").start_span("work").is_recording()
    provider.shutdown()
