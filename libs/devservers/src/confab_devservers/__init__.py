"""Real servers for Confab's dev fleet and integration/e2e tests.

Kafka, SecantusDB (MongoDB wire protocol), Redis, local-kms (AWS KMS API),
versitygw (S3 API) and clamd (ClamAV) run as child processes on free 127.0.0.1
ports and can be stopped, killed and restarted on the same ports and data. The
SMTP sink and the fake OpenAI server run in-process.
"""

from ._ports import free_port as _free_port
from ._process import ChildServer, ServerStartError
from .certs import CertFiles, DevCA
from .clamd_server import ClamdServer, eicar_bytes
from .fake_openai import FakeOpenAI, RecordedRequest, ReplyFn, echo_reply
from .kafka_server import KafkaServer, ensure_kafka_libs, find_repo_root
from .keys import dev_key_file
from .kms_server import KmsServer, ensure_local_kms
from .mongo_server import MongoServer
from .redis_server import RedisServer
from .s3_server import S3Server, ensure_versitygw
from .smtp_sink import SmtpMessage, SmtpSink


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (outside the ephemeral range, unique per process)."""
    return _free_port()


__all__ = [
    "CertFiles",
    "ChildServer",
    "ClamdServer",
    "DevCA",
    "FakeOpenAI",
    "KafkaServer",
    "KmsServer",
    "MongoServer",
    "RecordedRequest",
    "RedisServer",
    "ReplyFn",
    "S3Server",
    "ServerStartError",
    "SmtpMessage",
    "SmtpSink",
    "dev_key_file",
    "echo_reply",
    "eicar_bytes",
    "ensure_kafka_libs",
    "ensure_local_kms",
    "ensure_versitygw",
    "find_repo_root",
    "free_port",
]
