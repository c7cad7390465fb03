"""Prometheus metrics of the presence service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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
