"""FastAPI dependencies: the gateway context and the authenticated caller."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from confab_core.errors import Unauthenticated
from confab_core.identity import Caller
from gateway.clients.ops import ChatOps
from gateway.context import GatewayContext

_bearer = HTTPBearer(auto_error=False, description="JWT with tid, sub, roles, name, email")


def get_context(request: Request) -> GatewayContext:
    return cast(GatewayContext, request.app.state.gateway)


ContextDep = Annotated[GatewayContext, Depends(get_context)]


async def authenticate(
    ctx: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None:
        raise Unauthenticated("missing bearer token", "missing_token")
    return await ctx.verifier.verify(credentials.credentials)


def get_ops(ctx: ContextDep) -> ChatOps:
    return ctx.ops


CallerDep = Annotated[Caller, Depends(authenticate)]
OpsDep = Annotated[ChatOps, Depends(get_ops)]
