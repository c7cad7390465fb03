"""Prometheus metrics endpoint for the non-HTTP services."""

from __future__ import annotations

from prometheus_client import start_http_server


def serve_metrics(port: int) -> None:
    """Serves /metrics on ``port`` from a daemon thread; 0 turns it off."""
    if port:
        start_http_server(port)
