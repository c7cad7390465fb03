"""Presence's own tunables. Input limits live in confab_core.limits, shared with the gateway."""

# Heartbeats (every ~20 s per connection) move last_active_at at most this often,
# so a busy fleet does not rewrite every user's state hash on every beat.
LAST_ACTIVE_HEARTBEAT_SECONDS = 60.0
# A typing state repeated within this window is answered without publishing.
TYPING_REPEAT_SECONDS = 2.0
# Users x conversations remembered by one pod's typing throttle.
TYPING_THROTTLE_ENTRIES = 100_000
