"""Starts servers and the five services as child processes, wired together.

The same code serves ``make run`` and tests/e2e, so what the tests prove is
what a developer runs.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from confab_core.auth import mint_hs256
from confab_devservers import (
    CertFiles,
    ChildServer,
    ClamdServer,
    DevCA,
    KafkaServer,
    MongoServer,
    RedisServer,
    S3Server,
    SmtpSink,
    dev_key_file,
    free_port,
)

log = logging.getLogger(__name__)

HOST = "127.0.0.1"

FilesBackend = Literal["gridfs", "s3"]


class ServiceProcess(ChildServer):
    """One Confab service, ``python -m <package>``, ready when its health says so."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        env: dict[str, str],
        *,
        port: int,
        http: bool = False,
        probe_tls: CertFiles | None = None,
    ) -> None:
        super().__init__(workdir)
        self.name = name
        self.port = port
        self.env = env
        self._http = http
        self._probe_tls = probe_tls

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def metrics_url(self) -> str:
        """Where Prometheus scrapes it (the gateway serves /metrics itself)."""
        port = next((v for k, v in self.env.items() if k.endswith("_METRICS_PORT")), None)
        return f"http://{HOST}:{port}/metrics" if port else f"{self.url}/metrics"

    def _command(self) -> list[str]:
        package = "gateway" if self._http else self.name
        return [sys.executable, "-m", package]

    def _env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def _grpc_channel(self) -> grpc.Channel:
        if self._probe_tls is None:
            return grpc.insecure_channel(self.address)
        files = self._probe_tls
        credentials = grpc.ssl_channel_credentials(
            root_certificates=files.ca_file.read_bytes(),
            private_key=files.key_file.read_bytes(),
            certificate_chain=files.cert_file.read_bytes(),
        )
        return grpc.secure_channel(self.address, credentials)

    def _probe(self, timeout: float) -> None:
        if self._http:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=timeout) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"readyz answered {resp.status}")
            return
        with self._grpc_channel() as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
            if resp.status != health_pb2.HealthCheckResponse.SERVING:
                raise RuntimeError(f"health is {resp.status}")


@dataclass
class FleetOptions:
    workdir: Path
    gateways: int = 1
    jwt_secret: str = "confab-dev-secret-not-for-production"
    # Signs the tokens the services send each other (confab_core.servicetoken).
    internal_key: str = "confab-dev-internal-key-not-for-production"
    gateway_ports: list[int] = field(default_factory=list)
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    # An SMTP server to send to; the fleet starts a local sink when None.
    smtp: tuple[str, int] | None = None
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    # mTLS on every gRPC hop, with a CA and per-service certificates made at start
    # (tests/e2e turn it on; `make run` and the benchmarks stay plaintext).
    grpc_tls: bool = False
    # Where uploaded files' bytes go: GridFS in the MongoDB-wire server (nothing more
    # to run), or an S3 API (a local versitygw is started for it).
    files_backend: FilesBackend = "gridfs"
    # Signs the gateway's short-lived download URLs; a fresh one per run when None
    # (the URLs live two minutes, so nothing outlives a restart that would need it).
    file_url_key: str | None = None


class Fleet:
    def __init__(self, options: FleetOptions) -> None:
        self.options = options
        root = options.workdir
        self.kafka = KafkaServer(root / "kafka")
        self.mongo = MongoServer(root / "mongo")
        self.redis = RedisServer(root / "redis")
        # Always: the conversation service refuses to start without a scanner.
        self.clamd = ClamdServer(root / "clamd")
        self.s3 = S3Server(root / "s3") if options.files_backend == "s3" else None
        self.file_url_key = options.file_url_key or secrets.token_urlsafe(32)
        self.smtp_sink: SmtpSink | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.gateways: list[ServiceProcess] = []
        self.ca: DevCA | None = None

    @property
    def servers(self) -> list[ChildServer]:
        servers: list[ChildServer] = [self.redis, self.mongo, self.kafka, self.clamd]
        if self.s3 is not None:
            servers.append(self.s3)
        return servers

    def start(self) -> None:
        for server in self.servers:
            server.start()
        if self.options.smtp is None:
            self.smtp_sink = SmtpSink()
            self.smtp_sink.start()
            smtp = (self.smtp_sink.host, self.smtp_sink.port)
        else:
            smtp = self.options.smtp
        self._build(smtp)
        for svc in [*self.services.values(), *self.gateways]:
            svc.start(timeout=120)

    def _build(self, smtp: tuple[str, int]) -> None:
        root = self.options.workdir / "services"
        ports = {name: free_port() for name in ("conversation", "presence", "bot", "notification")}
        common = {"OTEL_TRACES_EXPORTER": os.environ.get("OTEL_TRACES_EXPORTER", "none")}
        kafka = self.kafka.bootstrap_servers
        probe_tls: CertFiles | None = None
        if self.options.grpc_tls:
            self.ca = DevCA(self.options.workdir / "tls")
            probe_tls = self.ca.issue("probe")

        def env(name: str, values: dict[str, str]) -> dict[str, str]:
            prefix = name.upper() + "_"
            out = {**common, "OTEL_SERVICE_NAME": name}
            out.update({prefix + k: v for k, v in values.items()})
            out[prefix + "INTERNAL_KEY"] = self.options.internal_key
            if self.ca is not None:
                files = self.ca.issue(name)
                out[prefix + "GRPC_TLS_CA_FILE"] = str(files.ca_file)
                out[prefix + "GRPC_TLS_CERT_FILE"] = str(files.cert_file)
                out[prefix + "GRPC_TLS_KEY_FILE"] = str(files.key_file)
            out.update(self.options.extra_env.get(name, {}))
            return out

        addr = {name: f"{HOST}:{port}" for name, port in ports.items()}
        bot_env = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "CONVERSATION_ADDR": addr["conversation"],
            "GRPC_PORT": str(ports["bot"]),
        }
        if self.options.openai_base_url:
            bot_env["OPENAI_BASE_URL"] = self.options.openai_base_url
        if self.options.openai_api_key:
            bot_env["OPENAI_API_KEY"] = self.options.openai_api_key
        specs = {
            "conversation": {
                "MONGO_URL": self.mongo.url,
                # Kept in the workdir, beside the data whose keys it wraps.
                "KEY_FILE": str(dev_key_file(self.options.workdir / "keys" / "kek")),
                "KAFKA_BOOTSTRAP_SERVERS": kafka,
                "GRPC_PORT": str(ports["conversation"]),
                # Erasure, export and retention reach notifications and presence.
                "NOTIFICATION_ADDR": addr["notification"],
                "PRESENCE_ADDR": addr["presence"],
                **self._files_env(),
            },
            "presence": {
                "REDIS_URL": self.redis.url,
                "KAFKA_BOOTSTRAP_SERVERS": kafka,
                "CONVERSATION_ADDR": addr["conversation"],
                "GRPC_PORT": str(ports["presence"]),
            },
            "bot": bot_env,
            "notification": {
                "MONGO_URL": self.mongo.url,
                "KAFKA_BOOTSTRAP_SERVERS": kafka,
                "CONVERSATION_ADDR": addr["conversation"],
                "PRESENCE_ADDR": addr["presence"],
                "SMTP_HOST": smtp[0],
                "SMTP_PORT": str(smtp[1]),
                "GRPC_PORT": str(ports["notification"]),
            },
        }
        for values in specs.values():
            values["METRICS_PORT"] = str(free_port())
        self.services = {
            name: ServiceProcess(
                root, name, env(name, values), port=ports[name], probe_tls=probe_tls
            )
            for name, values in specs.items()
        }
        wanted = list(self.options.gateway_ports)
        for i in range(self.options.gateways):
            port = wanted[i] if i < len(wanted) else free_port()
            gw_env = env(
                "gateway",
                {
                    "CONVERSATION_ADDR": addr["conversation"],
                    "PRESENCE_ADDR": addr["presence"],
                    "NOTIFICATION_ADDR": addr["notification"],
                    "BOT_ADDR": addr["bot"],
                    "KAFKA_BOOTSTRAP_SERVERS": kafka,
                    "REDIS_URL": self.redis.url,
                    "JWT_HS256_SECRET": self.options.jwt_secret,
                    "HOST": HOST,
                    "HTTP_PORT": str(port),
                    "GATEWAY_ID": f"gateway-{i}",
                    # Heartbeats every few seconds so tests of expiry stay short.
                    "HEARTBEAT_SECONDS": "5",
                    "FILE_URL_KEY": self.file_url_key,
                },
            )
            gw = ServiceProcess(root, "gateway", gw_env, port=port, http=True)
            gw.name = f"gateway-{i}"
            self.gateways.append(gw)

    def _files_env(self) -> dict[str, str]:
        """The conversation service's storage and scanner settings (CONVERSATION_ prefix)."""
        values = {
            "FILES_BACKEND": self.options.files_backend,
            "CLAMD_HOST": self.clamd.host,
            "CLAMD_PORT": str(self.clamd.port),
        }
        if self.s3 is not None:
            values.update(
                {
                    "S3_ENDPOINT_URL": self.s3.endpoint_url,
                    "S3_BUCKET": self.s3.bucket,
                    "S3_REGION": self.s3.region,
                    "S3_ACCESS_KEY_ID": self.s3.access_key,
                    "S3_SECRET_ACCESS_KEY": self.s3.secret_key,
                }
            )
        return values

    def token(
        self,
        tenant_id: str,
        user_id: str,
        *,
        roles: list[str] | None = None,
        name: str = "",
        email: str = "",
        ttl_seconds: int = 24 * 3600,
    ) -> str:
        return mint_hs256(
            self.options.jwt_secret,
            tenant_id=tenant_id,
            user_id=user_id,
            roles=roles,
            name=name or user_id.title(),
            email=email,
            ttl_seconds=ttl_seconds,
        )

    def gateway_url(self, index: int = 0) -> str:
        return self.gateways[index].url

    def stop(self) -> None:
        for svc in [*self.gateways, *reversed(list(self.services.values()))]:
            svc.stop()
        if self.smtp_sink is not None:
            self.smtp_sink.stop()
        for server in reversed(self.servers):
            server.stop()
