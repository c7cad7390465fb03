"""Typed settings: one class per service, loaded once at start.

Required values have no default, so a missing one stops the process at start
with a message naming the environment variable, instead of failing later.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from confab_core.clock import Clock
from confab_core.grpcx.tls import GrpcTls
from confab_core.kafka import KafkaSecurity, SaslMechanism, SecurityProtocol
from confab_core.servicetoken import InternalAuth

S = TypeVar("S", bound=BaseSettings)


class ServiceSettings(BaseSettings):
    """Values every service has; subclasses set ``env_prefix``."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Signs and verifies the tokens services send each other (servicetoken);
    # the same value in every service of a deployment, at least 32 bytes.
    internal_key: SecretStr = Field(min_length=32)
    log_level: str = "INFO"
    metrics_port: int = 0
    shutdown_grace_seconds: float = 10.0

    # mTLS on every gRPC hop, server and client side: all three PEM files or none
    # (plaintext). Mounted from a Secret (cert-manager's ca.crt, tls.crt, tls.key).
    grpc_tls_ca_file: Path | None = None
    grpc_tls_cert_file: Path | None = None
    grpc_tls_key_file: Path | None = None
    # With mTLS on: a plaintext port serving only gRPC health, for kubelet probes.
    grpc_health_port: int | None = None

    # How every Kafka client of the service reaches the brokers (kafka.KafkaSecurity).
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_file: Path | None = None
    kafka_ssl_cert_file: Path | None = None
    kafka_ssl_key_file: Path | None = None

    @model_validator(mode="after")
    def _transport_security(self) -> ServiceSettings:
        prefix = str(self.model_config.get("env_prefix", "")).upper()
        files = (self.grpc_tls_ca_file, self.grpc_tls_cert_file, self.grpc_tls_key_file)
        if any(f is not None for f in files) and not all(f is not None for f in files):
            names = ", ".join(f"{prefix}GRPC_TLS_{n}_FILE" for n in ("CA", "CERT", "KEY"))
            raise ValueError(f"set all of {names}, or none")
        try:
            self.kafka_security()
        except ValueError as exc:
            raise ValueError(f"{prefix}KAFKA_*: {exc}") from None
        return self

    def kafka_security(self) -> KafkaSecurity:
        password = self.kafka_sasl_password
        return KafkaSecurity(
            protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=None if password is None else password.get_secret_value(),
            ca_file=self.kafka_ssl_ca_file,
            cert_file=self.kafka_ssl_cert_file,
            key_file=self.kafka_ssl_key_file,
        )

    def grpc_tls(self) -> GrpcTls | None:
        ca, cert, key = self.grpc_tls_ca_file, self.grpc_tls_cert_file, self.grpc_tls_key_file
        if ca is None or cert is None or key is None:
            return None
        return GrpcTls.from_files(ca, cert, key)


class SettingsError(SystemExit):
    pass


def load_settings(cls: type[S]) -> S:
    try:
        return cls()
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        lines = []
        for err in exc.errors():
            name = (prefix + "_".join(str(p) for p in err["loc"])).upper()
            lines.append(f"  {name}: {err['msg']}")
        raise SettingsError(
            f"{cls.__name__}: invalid or missing settings:\n" + "\n".join(lines)
        ) from None


def internal_auth(service: str, settings: ServiceSettings, clock: Clock) -> InternalAuth:
    """The service's token key and, when configured, its mTLS certificate.

    The certificate files are read here, at start: one that is missing or not
    PEM stops the process with the file's name.
    """
    try:
        tls = settings.grpc_tls()
    except ValueError as exc:
        raise SettingsError(f"{type(settings).__name__}: {exc}") from None
    return InternalAuth(service, settings.internal_key.get_secret_value().encode(), clock, tls)
