"""The operator's audit commands: ``python -m conversation.audit verify --tenant T``.

Reads the same settings as the service (``CONVERSATION_MONGO_URL``, ...), walks
the tenant's hash chain and prints the result as one JSON line; exits 1 when a
link is broken, naming the first one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from confab_core import mongo
from confab_core.clock import SystemClock
from confab_core.settings import load_settings
from conversation.app import database
from conversation.handlers.audit import AuditTrail
from conversation.settings import ConversationSettings
from conversation.storage.audit import Verification


async def verify(settings: ConversationSettings, tenant_id: str) -> Verification:
    client = mongo.connect(settings.mongo_url, "conversation-audit")
    try:
        clock = SystemClock()
        trail = AuditTrail(database(settings, client, clock), clock)
        return await trail.verify_tenant(tenant_id)
    finally:
        await client.close()


def report(v: Verification) -> dict[str, object]:
    return {
        "ok": v.broken is None,
        "checked": v.checked,
        "first_seq": v.first_seq,
        "last_seq": v.last_seq,
        "broken_seq": v.broken.seq if v.broken else None,
        "broken_reason": v.broken.reason if v.broken else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conversation.audit")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="verify a tenant's audit hash chain")
    check.add_argument("--tenant", required=True)
    args = parser.parse_args(argv)
    settings = load_settings(ConversationSettings)
    result = asyncio.run(verify(settings, args.tenant))
    sys.stdout.write(json.dumps(report(result)) + "\n")
    return 0 if result.broken is None else 1


if __name__ == "__main__":
    sys.exit(main())
