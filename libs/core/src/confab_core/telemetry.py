"""OpenTelemetry tracing, configured only through the standard OTEL_* variables.

The SDK's Resource reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the
exporter is chosen by OTEL_TRACES_EXPORTER (otlp, console or none) and the OTLP
exporter reads its own OTEL_EXPORTER_OTLP_* variables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from pydantic_settings import BaseSettings, SettingsConfigDict

TRACER_NAME = "confab"


class OtelSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OTEL_", extra="ignore")

    sdk_disabled: bool = False
    traces_exporter: str = "otlp"
    traces_sampler: str | None = None


def setup_tracing(default_service_name: str) -> TracerProvider | None:
    provider = build_provider(default_service_name)
    if provider is not None:
        trace.set_tracer_provider(provider)
    return provider


def build_provider(default_service_name: str) -> TracerProvider | None:
    """The tracer provider the OTEL_* variables describe (None when the SDK is off)."""
    cfg = OtelSettings()
    if cfg.sdk_disabled:
        return None
    resource = Resource.create({"service.name": default_service_name}).merge(Resource.create())
    exporters = [
        e for e in (_exporter(n.strip()) for n in cfg.traces_exporter.split(",")) if e is not None
    ]
    # With nowhere to send spans, recording them is pure cost (about a tenth of a busy
    # gateway's CPU); unsampled spans still get ids, so logs and headers keep trace ids.
    # An explicit OTEL_TRACES_SAMPLER wins, and the SDK reads it itself.
    sampler = ALWAYS_OFF if not exporters and not cfg.traces_sampler else None
    provider = TracerProvider(resource=resource, sampler=sampler)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _exporter(name: str) -> SpanExporter | None:
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter,
        )

        return OTLPSpanExporter()
    return None


_tracer: tuple[trace.TracerProvider, trace.Tracer] | None = None


def tracer() -> trace.Tracer:
    """The project's tracer, made once per provider: the SDK builds a new Tracer (and
    compares instrumentation scopes) on every get_tracer, about a fifth of a busy
    gateway's CPU when called per event."""
    global _tracer
    provider = trace.get_tracer_provider()
    if _tracer is None or _tracer[0] is not provider:
        _tracer = (provider, provider.get_tracer(TRACER_NAME))
    return _tracer[1]


def inject_headers() -> list[tuple[str, bytes]]:
    """Current trace context as Kafka record headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(k, v.encode()) for k, v in carrier.items()]


def extract_headers(headers: Sequence[tuple[str, bytes]] | None) -> Context:
    carrier = {k: v.decode(errors="replace") for k, v in (headers or ())}
    return propagate.extract(carrier)


def extract_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> Context:
    carrier: Mapping[str, str] = {k: v for k, v in metadata if isinstance(v, str)}
    return propagate.extract(carrier)
