"""Fuzzes every REST operation of the running fleet from its OpenAPI document.

Whatever schemathesis sends (valid or not), the gateway must answer below 500,
and every error must be the JSON ``{"error": {"code", "message"}}``. Half of the
cases that name a conversation get a real one (a fresh public channel with a
message and a second member, made for the case), so bodies and queries are
fuzzed against real objects deep in the conversation service too; the other
half keep the generated ids.

The schema is the committed docs/openapi.json, loaded when this module is
collected (schemathesis needs it then to make one test per operation); the
first test checks that the fleet serves exactly that document at
/api/v1/openapi.json. (schemathesis.pytest.from_fixture, which would load it
from the fleet lazily, breaks on pytest 9: it sets a removed private attribute.)

Skipped unless schemathesis is installed (a dev dependency). Bounded: at most
CONFAB_FUZZ_EXAMPLES (default 2) examples per operation, in a tenant of its
own so nothing it does reaches the other e2e tests. Two per operation (some 240
cases over about 118 operations, about half the time four took) keeps `make test`
inside its 30-minute budget; `make fuzz` runs 25 per operation.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from confab_devfleet import Fleet
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")

pytestmark = pytest.mark.e2e

TENANT_FUZZ = "tenant-fuzz"
FUZZER = "fuzzer"
MAX_EXAMPLES = int(os.environ.get("CONFAB_FUZZ_EXAMPLES", "2"))
OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
_cases = itertools.count()
UVICORN_REFUSAL = "Invalid HTTP request received."

schema = schemathesis.openapi.from_dict(json.loads(OPENAPI.read_text()))


def test_the_fleet_serves_the_fuzzed_document(fleet: Fleet) -> None:
    served = httpx.get(f"{fleet.gateway_url()}/api/v1/openapi.json", timeout=15)
    assert served.status_code == 200
    assert served.json() == json.loads(OPENAPI.read_text())


def _real_target(fleet: Fleet) -> dict[str, str]:
    """A public channel the fuzzer owns, a peer member, and a message of the peer's."""
    peer = f"peer-{uuid.uuid4().hex[:8]}"
    base = f"{fleet.gateway_url()}/api/v1"
    owner = {"Authorization": f"Bearer {fleet.token(TENANT_FUZZ, FUZZER, roles=['agent'])}"}
    as_peer = {"Authorization": f"Bearer {fleet.token(TENANT_FUZZ, peer)}"}
    with httpx.Client(base_url=base, timeout=15) as http:
        resp = http.post(
            "/conversations",
            json={"kind": "public_channel", "title": f"fuzz {peer}", "member_ids": [peer]},
            headers=owner,
        )
        assert resp.status_code == 201, resp.text
        conversation_id = resp.json()["conversation"]["id"]
        resp = http.post(
            f"/conversations/{conversation_id}/messages",
            json={"text": "fuzz me", "client_msg_id": peer},
            headers=as_peer,
        )
        assert resp.status_code == 201, resp.text
        message_id = resp.json()["message"]["id"]
    return {"conversation_id": conversation_id, "message_id": message_id, "user_id": peer}


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_operation_answers_5xx(case: Any, fleet: Fleet) -> None:
    params = case.path_parameters
    if params and "conversation_id" in params and next(_cases) % 2 == 0:
        real = _real_target(fleet)
        for name in params:
            if name in real:
                params[name] = real[name]
    token = fleet.token(TENANT_FUZZ, FUZZER, roles=["agent"])
    response = case.call(
        base_url=fleet.gateway_url(), headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    curl = case.as_curl_command()[:800]
    where = f"{case.method} {case.formatted_path}\n{curl}\n{response.text[:500]}"
    assert response.status_code < 500, where
    if response.status_code == 400 and response.text == UVICORN_REFUSAL:
        # The HTTP server refused the request line itself (a URL of tens of KB)
        # before the app saw it; nothing of ours can shape that answer.
        return
    if response.status_code >= 400:
        assert "application/json" in str(response.headers.get("content-type")), where
        body = response.json()
        assert set(body) == {"error"}, where
        assert isinstance(body["error"].get("code"), str) and body["error"]["code"], where
        assert isinstance(body["error"].get("message"), str), where
