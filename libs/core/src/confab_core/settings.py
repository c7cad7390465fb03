"""Typed settings: one class per service, loaded once at start.

Required values have no default, so a missing one stops the process at start
with a message naming the environment variable, instead of failing later.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from confab_core.clock import Clock
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
    return InternalAuth(service, settings.internal_key.get_secret_value().encode(), clock)
