"""Apache Kafka 4.1 broker (KRaft, combined broker+controller) as a child JVM."""

from __future__ import annotations

import base64
import importlib
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._aio import run_coro
from ._ports import HOST, stable_ports
from ._process import ChildServer, ServerStartError, tail_file

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
_NODE_ID = 1

_LOG4J2 = """\
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


def find_repo_root(start: Path | None = None) -> Path:
    """The monorepo root: the nearest ancestor holding tools/kafka/pom.xml."""
    candidates = [start] if start is not None else [Path.cwd(), Path(__file__).resolve().parent]
    for origin in candidates:
        if origin is None:
            continue
        for path in (origin.resolve(), *origin.resolve().parents):
            if (path / "tools" / "kafka" / "pom.xml").is_file():
                return path
    raise FileNotFoundError(
        "cannot locate the repo root (a directory containing tools/kafka/pom.xml); "
        "pass repo_root= or set CONFAB_KAFKA_LIBS"
    )


def ensure_kafka_libs(repo_root: Path | None = None) -> Path:
    """Directory with the Kafka jars, running scripts/install-kafka.sh if they are missing.

    ``CONFAB_KAFKA_LIBS`` overrides the location (and disables installation).
    """
    override = os.environ.get("CONFAB_KAFKA_LIBS")
    if override:
        libs = Path(override)
        if not (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
            raise FileNotFoundError(
                f"CONFAB_KAFKA_LIBS={libs} has no kafka_2.13-{KAFKA_VERSION}.jar"
            )
        return libs
    root = find_repo_root(repo_root)
    libs = root / ".cache" / "kafka" / "libs"
    # The stamp is what install-kafka.sh writes last; the jar alone could be
    # the remains of an interrupted copy.
    complete = any(libs.glob(f".complete-{KAFKA_VERSION}-*"))
    if not (complete and (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()):
        script = root / "scripts" / "install-kafka.sh"
        log.info("Kafka jars missing in %s; running %s", libs, script)
        result = subprocess.run(
            ["bash", str(script)],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{script} failed with {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
    return libs


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise FileNotFoundError("java (17+) not found on PATH and JAVA_HOME is not set")
    return java


def _random_kafka_uuid() -> str:
    # Same rules as org.apache.kafka.common.Uuid.randomUuid(), without paying
    # for a JVM start (`StorageTool random-uuid`) on every fresh workdir.
    while True:
        raw = os.urandom(16)
        text = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
        if not text.startswith("-") and raw not in (bytes(16), bytes(15) + b"\x01"):
            return text


def _tcp_accepts(port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


async def _describe_cluster(bootstrap: str, request_timeout: float) -> dict[str, Any]:
    # aiokafka ships without type information; importing it dynamically keeps
    # `mypy --strict` clean without a per-project mypy override.
    admin_mod: Any = importlib.import_module("aiokafka.admin")
    admin: Any = admin_mod.AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=max(1000, int(request_timeout * 1000)),
        client_id="confab-devservers-probe",
    )
    try:
        await admin.start()
        info: dict[str, Any] = await admin.describe_cluster()
        return info
    finally:
        try:
            await admin.close()
        except Exception:
            log.debug("closing aiokafka probe client failed", exc_info=True)


class KafkaServer(ChildServer):
    """Single-node Kafka 4.1 (KRaft combined mode) on free 127.0.0.1 ports.

    Ports and the log dir live as long as the workdir: ``stop()``/``kill()``
    followed by ``start()`` brings back the same broker with its data.
    """

    name = "kafka"

    def __init__(
        self,
        workdir: Path,
        repo_root: Path | None = None,
        *,
        heap: str = "512m",
        extra_properties: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(workdir)
        self._repo_root = repo_root
        self._heap = heap
        self._extra = dict(extra_properties or {})
        ports = stable_ports(self.workdir / "kafka.ports.json", ("broker", "controller"))
        self.port = ports["broker"]
        self.controller_port = ports["controller"]
        self._libs: Path | None = None
        self._java: str | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "kafka-data"

    @property
    def properties_path(self) -> Path:
        return self.workdir / "kafka.properties"

    def _properties(self) -> dict[str, str]:
        props = {
            "node.id": str(_NODE_ID),
            "process.roles": "broker,controller",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.quorum.voters": f"{_NODE_ID}@{HOST}:{self.controller_port}",
            "log.dirs": str(self.data_dir),
            "num.partitions": "4",
            "auto.create.topics.enable": "true",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # After a kill() the restarted broker cannot register until the
            # controller expires the dead incarnation's session (default 9 s);
            # a shorter session makes crash-restart tests quicker.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "5000",
            # Sized for a 2-core dev box / CI runner rather than a data center.
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "log.cleaner.threads": "1",
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        }
        props.update(self._extra)
        return props

    def _write_config(self) -> None:
        text = "".join(f"{k}={v}\n" for k, v in self._properties().items())
        self.properties_path.write_text(text)
        (self.workdir / "kafka-log4j2.properties").write_text(_LOG4J2)

    def _jvm_args(self) -> list[str]:
        assert self._java is not None and self._libs is not None
        return [
            self._java,
            f"-Xmx{self._heap}",
            "-Xms64m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.workdir / 'kafka-log4j2.properties'}",
            "-cp",
            f"{self._libs}/*",
        ]

    def _prepare(self, deadline: float) -> None:
        if self._libs is None:
            self._libs = ensure_kafka_libs(self._repo_root)
        if self._java is None:
            self._java = find_java()
        self._write_config()
        if (self.data_dir / "meta.properties").is_file():
            return
        cluster_id = _random_kafka_uuid()
        cmd = [
            *self._jvm_args(),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(self.properties_path),
        ]
        log.info("formatting Kafka storage in %s (cluster id %s)", self.data_dir, cluster_id)
        with self.log_path.open("ab") as log_file:
            log_file.write(f"\n===== formatting: {' '.join(cmd)}\n".encode())
            log_file.flush()
            try:
                result = subprocess.run(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    timeout=max(1.0, deadline - time.monotonic()),
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise ServerStartError(
                    f"Kafka storage format timed out\n{tail_file(self.log_path)}"
                ) from exc
        if result.returncode != 0:
            raise ServerStartError(
                f"Kafka storage format failed with {result.returncode}\n{tail_file(self.log_path)}"
            )

    def _command(self) -> list[str]:
        return [*self._jvm_args(), "kafka.Kafka", str(self.properties_path)]

    def _probe(self, timeout: float) -> None:
        # A plain TCP check first: aiokafka logs every refused bootstrap at
        # ERROR, which would bury real errors in the test output.
        if not _tcp_accepts(self.port, timeout=min(timeout, 1.0)):
            raise ConnectionRefusedError(f"nothing listening on {self.bootstrap_servers} yet")
        info = run_coro(lambda: _describe_cluster(self.bootstrap_servers, timeout))
        # KRaft only lists a broker in metadata once it is registered and
        # unfenced, i.e. once it accepts produce requests.
        brokers = info.get("brokers") or []
        if not any(int(b.get("node_id", -1)) == _NODE_ID for b in brokers):
            raise RuntimeError(f"broker {_NODE_ID} not yet in cluster metadata: {info!r}")
