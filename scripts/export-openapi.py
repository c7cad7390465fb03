"""Writes the gateway's OpenAPI document; a gateway test fails when it drifts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gateway.openapi import openapi_document


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/openapi.json")
    out.write_text(json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
