"""Prometheus metrics of the presence service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge

from confab.presence.v1 import presence_pb2 as pb

if TYPE_CHECKING:
    from presence.storage.presence import Change

# Fleet-wide values kept in Redis by the scripts and copied here by each pod's
# sweeper: every pod reports the same number, so dashboards take max(), not sum().
CONNECTIONS = Gauge("confab_presence_connections", "Live device connections, fleet-wide")
ONLINE_USERS = Gauge("confab_presence_online_users", "Users not offline, fleet-wide")

EVENTS_PUBLISHED = Counter(
    "confab_presence_events_published_total", "Presence events acknowledged by Kafka"
)
EVENTS_DROPPED = Counter(
    "confab_presence_events_dropped_total",
    "Presence events dropped because the in-memory queue was full during a Kafka outage",
)
EVENTS_COALESCED = Counter(
    "confab_presence_events_coalesced_total",
    "Queued presence events replaced by a newer one for the same user before publishing",
)
EVENT_QUEUE_DEPTH = Gauge(
    "confab_presence_event_queue_depth", "Presence events waiting to be published"
)
PUBLISH_FAILURES = Counter(
    "confab_presence_publish_failures_total", "Failed attempts to publish a batch of events"
)
SWEPT_CONNECTIONS = Counter(
    "confab_presence_swept_connections_total",
    "Connections removed because their gateway stopped heartbeating",
)

CHANGES = Counter(
    "confab_presence_changes_total",
    "Presence changes queued for publishing, by the user's resulting status",
    ["status"],
)
STATUS_SETS = Counter(
    "confab_presence_status_set_total",
    "SetStatus calls, by chosen status (online: automatic)",
    ["status"],
)
CUSTOM_STATUS_EXPIRED = Counter(
    "confab_presence_custom_status_expired_total",
    "Custom statuses cleared because their expiry passed",
)
GRACE_STARTED = Counter(
    "confab_presence_offline_grace_started_total",
    "Last devices disconnected: the user stays present for the offline grace",
)
GRACE_RESUMED = Counter(
    "confab_presence_offline_grace_reconnects_total",
    "Reconnects within the offline grace: an offline/online flap that was not published",
)
GRACE_ENDED = Counter(
    "confab_presence_offline_grace_ended_total",
    "Offline graces that ran out: the user went offline",
)
TYPING_PUBLISHED = Counter(
    "confab_presence_typing_events_total",
    "Typing events queued for publishing, by state (start or stop)",
    ["state"],
)
TYPING_THROTTLED = Counter(
    "confab_presence_typing_throttled_total",
    "SetTyping calls answered without publishing: the same state was published moments ago",
)
TYPING_EXPIRED_UNSENT = Counter(
    "confab_presence_typing_expired_unsent_total",
    "Typing events discarded unsent because they expired while queued (a Kafka outage)",
)

_STATUS_LABELS = {
    pb.PRESENCE_STATUS_ONLINE: "online",
    pb.PRESENCE_STATUS_AWAY: "away",
    pb.PRESENCE_STATUS_BUSY: "busy",
    pb.PRESENCE_STATUS_OFFLINE: "offline",
}


def status_label(status: pb.PresenceStatus.ValueType) -> str:
    return _STATUS_LABELS.get(status, "unspecified")


def count_change(change: Change) -> None:
    """Counts what one script run did, whoever ran it (a handler or the sweeper)."""
    if change.changed:
        CHANGES.labels(status_label(change.state.status)).inc()
    if change.custom_expired:
        CUSTOM_STATUS_EXPIRED.inc()
    if change.grace == "started":
        GRACE_STARTED.inc()
    elif change.grace == "resumed":
        GRACE_RESUMED.inc()
    elif change.grace == "ended":
        GRACE_ENDED.inc()
