"""Client channels to peer services, and turning their errors back into ours."""

from __future__ import annotations

import grpc

from confab_core.errors import ERROR_CODE_METADATA_KEY, ConfabError, from_grpc
from confab_core.grpcx.interceptors import (
    ClientInterceptor,
    StreamUnaryClientInterceptor,
    UnaryStreamClientInterceptor,
)
from confab_core.servicetoken import InternalAuth

# Retries UNAVAILABLE (a peer restarting) transparently; every call that can be
# retried is idempotent by design (sends carry client_msg_id).
_SERVICE_CONFIG = """{
  "methodConfig": [{
    "name": [{}],
    "retryPolicy": {
      "maxAttempts": 5,
      "initialBackoff": "0.1s",
      "maxBackoff": "2s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}"""


def channel(target: str, auth: InternalAuth, audience: str) -> grpc.aio.Channel:
    """A channel to the ``audience`` service at ``target``; every call on it is
    signed by ``auth`` for the caller current at the time of the call, over mTLS
    when ``auth`` has a certificate."""
    interceptors: list[grpc.aio.ClientInterceptor] = [
        ClientInterceptor(auth.signer, audience),
        UnaryStreamClientInterceptor(auth.signer, audience),
        StreamUnaryClientInterceptor(auth.signer, audience),
    ]
    options = [
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 30_000),
    ]
    if auth.tls is None:
        return grpc.aio.insecure_channel(target, interceptors=interceptors, options=options)
    return grpc.aio.secure_channel(
        target, auth.tls.channel_credentials(), interceptors=interceptors, options=options
    )


def translate(exc: grpc.aio.AioRpcError) -> ConfabError:
    code: str | None = None
    for key, value in exc.trailing_metadata() or ():
        if key == ERROR_CODE_METADATA_KEY and isinstance(value, str):
            code = value
    return from_grpc(exc.code(), exc.details() or "", code)
