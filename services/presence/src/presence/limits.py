"""Input limits; the gateway should enforce the same ones before calling."""

MAX_ID_CHARS = 128
MAX_PRESENCE_IDS = 500
# A gateway with more sockets splits its heartbeat into several calls.
MAX_HEARTBEAT_CONNECTIONS = 20_000
