"""Input limits; the gateway should enforce the same ones before calling."""

MAX_ID_CHARS = 128
MAX_PRESENCE_IDS = 500
# A gateway with more sockets splits its heartbeat into several calls.
MAX_HEARTBEAT_CONNECTIONS = 20_000
# Custom status text, in characters (code points) after trimming.
MAX_CUSTOM_STATUS_CHARS = 100
# Heartbeats (every ~20 s per connection) move last_active_at at most this often,
# so a busy fleet does not rewrite every user's state hash on every beat.
LAST_ACTIVE_HEARTBEAT_SECONDS = 60.0
# A typing state repeated within this window is answered without publishing.
TYPING_REPEAT_SECONDS = 2.0
# Users x conversations remembered by one pod's typing throttle.
TYPING_THROTTLE_ENTRIES = 100_000
