"""gRPC plumbing: interceptors, the server runner and client channels."""

from typing import Any, TypeAlias

import grpc

Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]
