"""The baseline: a bare python-socketio server that re-emits a ``send`` to a room.

No auth, storage, broker or rate limit: what the same Socket.IO stack costs when it
does nothing but fan-out. It speaks the shapes the load generator expects from Confab
(``message:new`` with ``conversation_id``, ``seq`` and ``client_msg_id``; an ack with
``{ok, message}``), so the same clients drive both.

Usage: python bench/baselines/bare_socketio.py --port 8765
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from typing import Any

import socketio
import uvicorn

sio = socketio.AsyncServer(async_mode="asgi", logger=False, engineio_logger=False)
app = socketio.ASGIApp(sio)
_seq: dict[str, int] = defaultdict(int)


@sio.event  # type: ignore[untyped-decorator]
async def connect(sid: str, environ: dict[str, Any], auth: dict[str, Any] | None) -> None:
    for room in (auth or {}).get("rooms", []):
        await sio.enter_room(sid, room)


@sio.on("send")  # type: ignore[untyped-decorator]
async def send(sid: str, data: dict[str, Any]) -> dict[str, Any]:
    room = str(data["conversation_id"])
    _seq[room] += 1
    message = {
        "conversation_id": room,
        "seq": _seq[room],
        "client_msg_id": data.get("client_msg_id", ""),
        "text": data.get("text", ""),
    }
    await sio.emit("message:new", message, room=room)
    return {"ok": True, "message": message, "created": True}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
