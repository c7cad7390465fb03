from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from confab_core import limits
from confab_core.errors import InvalidArgument
from gateway import schemas
from gateway.deps import CallerDep, OpsDep
from gateway.routes.conversations import LIMITED

router = APIRouter(prefix="/presence", tags=["presence"])


@router.get("", response_model=list[schemas.PresenceOut])
async def get_presence(
    caller: CallerDep,
    ops: OpsDep,
    user_ids: Annotated[str, Query(min_length=1, max_length=20000, description="Comma-separated")],
) -> list[schemas.PresenceOut]:
    ids = [u for u in (s.strip() for s in user_ids.split(",")) if u]
    if not ids:
        raise InvalidArgument("user_ids is empty", "invalid_user_ids")
    if len(ids) > limits.MAX_PRESENCE_IDS:
        raise InvalidArgument(
            f"at most {limits.MAX_PRESENCE_IDS} user ids per call", "too_many_user_ids"
        )
    return await ops.presence(caller, ids)


@router.put("/me", response_model=schemas.PresenceOut, responses=LIMITED)
async def set_my_presence(
    body: schemas.SetPresenceIn, caller: CallerDep, ops: OpsDep
) -> schemas.PresenceOut:
    return await ops.set_presence(caller, body)
