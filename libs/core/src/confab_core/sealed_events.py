"""Conversation events sealed with their tenant's data key: one way to seal, one to open.

A ConversationEvent carries message text and names, so it is never stored or
published in the clear. The conversation service seals each serialized event
when it writes the outbox record, with associated data bound to (tenant,
"outbox", event id, "payload"); the relay publishes those bytes as the Kafka
value, with the tenant and event id in headers. A consumer reads the headers,
gets that tenant's keys (conversation's KeyService, behind a TTL cache) and
opens the value here.

A record that cannot be opened is skipped and counted, never retried: a
tenant whose keys were destroyed (crypto-shredding) stays unreadable forever,
and so does a tampered or misplaced value. Failing to *get* the keys (the
KeyService restarting) raises, so the consumer retries the record instead.
"""

from __future__ import annotations

import logging
from typing import Any, Generic, TypeVar

import grpc
from aiokafka import ConsumerRecord
from google.protobuf.message import DecodeError, Message
from prometheus_client import Counter

from confab.conversation.v1 import events_pb2, keys_pb2, keys_pb2_grpc
from confab_core.crypto import (
    DataKey,
    KeySource,
    KeysShreddedError,
    TenantKeys,
    UndecryptableError,
    aad,
    seal,
    unseal,
)
from confab_core.grpcx.client import translate
from confab_core.identity import ROLE_SERVICE, Caller, acting_as
from confab_core.kafka import EVENT_ID_HEADER, TENANT_ID_HEADER

log = logging.getLogger(__name__)

OUTBOX_COLLECTION = "outbox"
# Streamed bot replies (confab.bot.v1.StreamEvent): message text too, sealed the
# same way under their own name, so neither kind of record opens as the other.
STREAM_COLLECTION = "bot-streams"
PAYLOAD_FIELD = "payload"
M = TypeVar("M", bound=Message)

SKIPPED = Counter(
    "confab_sealed_events_skipped_total",
    "Conversation events a consumer dropped because they cannot be opened",
    ["group", "reason"],
)


def payload_aad(tenant_id: str, event_id: str, collection: str = OUTBOX_COLLECTION) -> bytes:
    return aad(tenant_id, collection, event_id, PAYLOAD_FIELD)


def seal_event(
    key: DataKey,
    tenant_id: str,
    event_id: str,
    payload: bytes,
    collection: str = OUTBOX_COLLECTION,
) -> bytes:
    """``payload`` (a serialized ConversationEvent, or a StreamEvent with
    ``collection=STREAM_COLLECTION``) sealed for Kafka."""
    return seal(key, payload, payload_aad(tenant_id, event_id, collection))


def open_event(
    keys: TenantKeys, event_id: str, sealed: bytes, collection: str = OUTBOX_COLLECTION
) -> bytes:
    """The serialized event; raises ``UndecryptableError`` when ``sealed`` is not
    the payload of event ``event_id`` of ``keys``'s tenant, intact."""
    return unseal(keys, sealed, payload_aad(keys.tenant_id, event_id, collection))


def event_headers(tenant_id: str, event_id: str) -> list[tuple[str, bytes]]:
    return [(TENANT_ID_HEADER, tenant_id.encode()), (EVENT_ID_HEADER, event_id.encode())]


def keys_from_proto(resp: keys_pb2.GetTenantKeysResponse) -> TenantKeys:
    """KeyService's answer as the crypto library's TenantKeys."""
    by_id = {k.key_id: DataKey(k.key_id, bytes(k.key)) for k in resp.keys}
    current = by_id.get(resp.current_key_id)
    if current is None:
        raise UndecryptableError(f"KeyService named current key {resp.current_key_id!r}, not sent")
    return TenantKeys(resp.tenant_id, current, by_id, bytes(resp.search_key))


class KeyServiceClient:
    """A KeySource over conversation's KeyService: the tenant's data keys, asked
    for as ``user_id`` (the calling service's own user) with the service role in
    that tenant, since KeyService answers for the caller's own tenant only. Put a
    CachingKeySource in front: one call per tenant per TTL, not per event."""

    def __init__(self, channel: grpc.aio.Channel, user_id: str, timeout: float = 10.0) -> None:
        self._stub = keys_pb2_grpc.KeyServiceStub(channel)
        self._user_id = user_id
        self._timeout = timeout

    async def keys(self, tenant_id: str) -> TenantKeys:
        caller = Caller(tenant_id, self._user_id, frozenset({ROLE_SERVICE}))
        try:
            with acting_as(caller):
                resp = await self._stub.GetTenantKeys(
                    keys_pb2.GetTenantKeysRequest(), timeout=self._timeout
                )
        except grpc.aio.AioRpcError as exc:
            err = translate(exc)
            if err.code == "keys_shredded":
                raise KeysShreddedError(tenant_id) from None
            raise err from exc
        return keys_from_proto(resp)


def _header(record: ConsumerRecord[bytes, bytes], name: str) -> str:
    for key, value in record.headers or ():
        if key == name and value:
            try:
                return bytes(value).decode("ascii")
            except UnicodeDecodeError:
                return ""
    return ""


class SealedOpener(Generic[M]):
    """Opens sealed records of one message type (with tenant_id and event_id fields)."""

    def __init__(self, keys: KeySource, group: str, message_type: type[M], collection: str) -> None:
        self._keys = keys
        self._group = group
        self._type = message_type
        self._collection = collection

    def _skip(self, record: ConsumerRecord[bytes, bytes], reason: str, tenant: str = "") -> None:
        SKIPPED.labels(self._group, reason).inc()
        log.warning(
            "skipping a conversation event that cannot be opened",
            extra={
                "reason": reason,
                "tenant_id": tenant,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
            },
        )

    async def open(self, record: ConsumerRecord[bytes, bytes]) -> M | None:
        """The record's event, or None (counted, logged) when it must be skipped."""
        tenant_id = _header(record, TENANT_ID_HEADER)
        event_id = _header(record, EVENT_ID_HEADER)
        if not tenant_id or not event_id or not record.value:
            self._skip(record, "unsealed")
            return None
        try:
            keys = await self._keys.keys(tenant_id)
        except KeysShreddedError:
            self._skip(record, "shredded", tenant_id)
            return None
        try:
            payload = open_event(keys, event_id, record.value, self._collection)
        except UndecryptableError:
            self._skip(record, "undecryptable", tenant_id)
            return None
        event = self._type()
        try:
            event.ParseFromString(payload)
        except DecodeError:
            self._skip(record, "undecodable", tenant_id)
            return None
        named: Any = event
        if named.tenant_id != tenant_id or named.event_id != event_id:
            # Sealed under these names, so only a bug at the writer gets here.
            self._skip(record, "mismatched", tenant_id)
            return None
        return event


class EventOpener(SealedOpener[events_pb2.ConversationEvent]):
    """What every consumer of confab.conversation.events.v1 decodes records with."""

    def __init__(self, keys: KeySource, group: str) -> None:
        super().__init__(keys, group, events_pb2.ConversationEvent, OUTBOX_COLLECTION)
