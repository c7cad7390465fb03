"""``make run``: the whole fleet on local servers, a demo tenant, and tokens."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from confab_devfleet.demo import seed_demo
from confab_devfleet.fleet import Fleet, FleetOptions


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m confab_devfleet")
    parser.add_argument("--workdir", type=Path, default=Path(".run/dev"))
    parser.add_argument("--port", type=int, default=8080, help="first gateway's HTTP port")
    parser.add_argument("--gateways", type=int, default=1)
    parser.add_argument("--openai-base-url", default=None)
    parser.add_argument("--openai-api-key", default=None)
    parser.add_argument(
        "--grpc-tls", action="store_true", help="mTLS between the services, with a dev CA"
    )
    parser.add_argument(
        "--files-backend",
        choices=["gridfs", "s3"],
        default="gridfs",
        help="where uploaded files go: GridFS in the MongoDB-wire server, or a local versitygw",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    fleet = Fleet(
        FleetOptions(
            workdir=args.workdir.resolve(),
            gateways=args.gateways,
            gateway_ports=[args.port],
            openai_base_url=args.openai_base_url,
            openai_api_key=args.openai_api_key,
            grpc_tls=args.grpc_tls,
            files_backend=args.files_backend,
        )
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        fleet.start()
        demo = seed_demo(fleet)
        out = sys.stdout
        out.write("\nConfab is running.\n")
        for i, gw in enumerate(fleet.gateways):
            out.write(f"  gateway {i}:      {gw.url}   (Socket.IO at {gw.url}/socket.io/)\n")
        out.write(f"  OpenAPI:        {fleet.gateway_url()}/api/v1/openapi.json\n")
        out.write(f"  API docs:       {fleet.gateway_url()}/api/v1/docs\n")
        if fleet.smtp_sink is not None:
            out.write(f"  SMTP sink:      {fleet.smtp_sink.host}:{fleet.smtp_sink.port}\n")
        out.write(f"  clamd:          {fleet.clamd.host}:{fleet.clamd.port}\n")
        if fleet.s3 is not None:
            out.write(f"  S3 (versitygw): {fleet.s3.endpoint_url}   bucket {fleet.s3.bucket}\n")
        for name, svc in fleet.services.items():
            out.write(f"  {name + ' metrics:':<16}{svc.metrics_url}\n")
        out.write(f"  logs:           {args.workdir}/services/*.log\n\n")
        out.write(f"Demo tenant '{demo.tenant_id}', conversations:\n")
        for title, conv_id in demo.conversations.items():
            out.write(f"  {title:<16} {conv_id}\n")
        out.write("\nDev tokens (Authorization: Bearer <token>, or Socket.IO auth {token}):\n")
        for user, token in demo.tokens.items():
            out.write(f"  {user:<8} {token}\n")
        out.write(
            "\nTry:\n"
            f"  curl -H 'Authorization: Bearer {demo.tokens['alice'][:16]}...' "
            f"{fleet.gateway_url()}/api/v1/conversations\n"
            "Ctrl-C stops everything.\n"
        )
        out.flush()
        stop.wait()
    finally:
        fleet.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
