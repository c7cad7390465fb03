from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.deps import ContextDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz(ctx: ContextDep, response: Response) -> dict[str, str]:
    if not all(e.is_set() for e in (ctx.fanout_ready, ctx.streams_ready, ctx.settings_ready)):
        response.status_code = 503
        return {"status": "starting"}
    return {"status": "ready"}


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
