"""Real servers for Confab's dev fleet and integration/e2e tests.

Kafka, SecantusDB (MongoDB wire protocol), Redis and local-kms (AWS KMS API)
run as child processes on free 127.0.0.1 ports and can be stopped, killed and
restarted on the same ports and data. The SMTP sink and the fake OpenAI server run in-process.
"""

from ._ports import free_port as _free_port
from ._process import ChildServer, ServerStartError
from .fake_openai import FakeOpenAI, RecordedRequest, ReplyFn, echo_reply
from .kafka_server import KafkaServer, ensure_kafka_libs, find_repo_root
from .keys import dev_key_file
from .kms_server import KmsServer, ensure_local_kms
from .mongo_server import MongoServer
from .redis_server import RedisServer
from .smtp_sink import SmtpMessage, SmtpSink


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (outside the ephemeral range, unique per process)."""
    return _free_port()


__all__ = [
    "ChildServer",
    "FakeOpenAI",
    "KafkaServer",
    "KmsServer",
    "MongoServer",
    "RecordedRequest",
    "RedisServer",
    "ReplyFn",
    "ServerStartError",
    "SmtpMessage",
    "SmtpSink",
    "dev_key_file",
    "echo_reply",
    "ensure_kafka_libs",
    "ensure_local_kms",
    "find_repo_root",
    "free_port",
]
