"""Key operations from a shell, with the service's own settings (its environment):

    python -m conversation.keys rotate --tenant T   # stage a new data key, queue re-encryption
    python -m conversation.keys status --tenant T   # keys, the current one, job progress

Prints one JSON object. The re-encrypt job itself runs inside the service
replicas (leased), not in this command: it may be stopped at any time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime

from confab_core import mongo
from confab_core.clock import Clock, SystemClock
from confab_core.settings import load_settings
from conversation.app import SERVICE, database
from conversation.handlers.keys import KeyHandler
from conversation.settings import ConversationSettings


def _json(value: object) -> str:
    def default(o: object) -> str:
        if isinstance(o, datetime):
            return o.isoformat()
        raise TypeError(f"not JSON: {type(o).__name__}")

    return json.dumps(value, default=default, indent=2)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m conversation.keys")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("rotate", "stage a new data key for the tenant and queue the re-encrypt job"),
        ("status", "the tenant's keys, the current one, and re-encrypt progress"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--tenant", required=True)
    return parser


async def run(
    argv: Sequence[str], settings: ConversationSettings, clock: Clock | None = None
) -> str:
    args = _parser().parse_args(argv)
    client = mongo.connect(settings.mongo_url, f"{SERVICE}-keys")
    try:
        db = database(settings, client, clock or SystemClock())
        await db.ensure_indexes()
        keys = KeyHandler(db)
        if args.command == "rotate":
            staged = await keys.rotate(args.tenant)
            return _json({"tenant_id": args.tenant, "staged": asdict(staged)})
        return _json(asdict(await keys.status(args.tenant)))
    finally:
        await client.close()


def main() -> None:
    settings = load_settings(ConversationSettings)
    sys.stdout.write(asyncio.run(run(sys.argv[1:], settings)) + "\n")


if __name__ == "__main__":
    main()
