"""Mutual TLS between services, from the PEM files cert-manager (or the dev CA) mounts.

Both sides of every hop present a certificate signed by the deployment's CA:
servers require one from their callers, callers verify the server's against the
name they dialled. The service token still says who calls and for whom; the
certificate keeps everyone else off the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc


class TlsFileError(ValueError):
    """A configured certificate, key or CA file cannot be read."""


def _read(kind: str, path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TlsFileError(f"cannot read the {kind} file {path}: {exc.strerror}") from exc
    if b"-----BEGIN " not in data:
        raise TlsFileError(f"the {kind} file {path} holds no PEM block")
    return data


@dataclass(frozen=True, slots=True, repr=False)
class GrpcTls:
    """The CA a service trusts, and the certificate chain and key it presents."""

    ca: bytes
    cert: bytes
    key: bytes

    @classmethod
    def from_files(cls, ca_file: Path, cert_file: Path, key_file: Path) -> GrpcTls:
        # Read once at start: a missing or empty mount stops the process there,
        # not at its first call. Rotated files take effect on the next restart.
        return cls(
            ca=_read("CA", ca_file),
            cert=_read("certificate", cert_file),
            key=_read("private key", key_file),
        )

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.ca, require_client_auth=True
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )

    def __repr__(self) -> str:
        return "GrpcTls(<pem>)"
