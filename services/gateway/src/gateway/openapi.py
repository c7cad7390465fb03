"""The OpenAPI document, built without starting anything."""

from __future__ import annotations

from typing import Any

from gateway.app import build_api


def openapi_document() -> dict[str, Any]:
    return build_api().openapi()
