# Fixtures are imported (not listed in pytest_plugins) because pytest only
# honours pytest_plugins in the rootdir conftest.
from confab_devservers.pytest_plugin import (  # noqa: F401
    _confab_kafka,
    _confab_mongo,
    _confab_redis,
    clamd_server,
    fake_openai,
    kafka_server,
    mongo_server,
    redis_server,
    s3_server,
    smtp_sink,
)
