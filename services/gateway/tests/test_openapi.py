import json
from pathlib import Path

from gateway.openapi import openapi_document

COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


def test_committed_openapi_matches_the_code() -> None:
    committed = json.loads(COMMITTED.read_text())
    assert committed == json.loads(json.dumps(openapi_document())), (
        "docs/openapi.json is stale: run `make openapi` and commit it"
    )


def test_every_operation_documents_its_errors_as_json() -> None:
    doc = openapi_document()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "422" in op["responses"], (method, path)
            assert op["security"] == [{"HTTPBearer": []}], (method, path)
