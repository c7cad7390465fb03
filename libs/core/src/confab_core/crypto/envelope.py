"""AES-256-GCM sealing of single fields, bound to where the field lives.

A sealed blob names the data key that sealed it, so a tenant can hold several
keys at once (rotation) and a reader picks the right one without trying each.
The associated data binds tenant, collection, document id and field: a blob
copied into another document, field or tenant fails its tag check.

Blob layout (version 1)::

    0x01 | len(key_id) (1 byte) | key_id (ascii) | nonce (12 bytes) | ciphertext+tag

Nonces are random (96 bits): with one key per tenant and rotation available,
the 2^32-messages-per-key bound of random GCM nonces is far away.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from confab_core.errors import FailedPrecondition

VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
MAX_KEY_ID_BYTES = 64
_AAD_PREFIX = b"confab.field.v1"


class UndecryptableError(Exception):
    """A blob that cannot be opened: wrong place (aad), unknown key, tampering, bad format."""


class KeysShreddedError(FailedPrecondition):
    """The tenant's keys were destroyed (crypto-shredding): nothing of theirs decrypts.

    A domain error, so a call reaching it anywhere is FAILED_PRECONDITION
    ``keys_shredded`` (HTTP 409), never a 500.
    """

    def __init__(self, tenant_id: str) -> None:
        super().__init__("this tenant's keys were destroyed", "keys_shredded")
        self.tenant_id = tenant_id


@dataclass(frozen=True, slots=True)
class DataKey:
    """One AES-256-GCM data key. The AEAD object is built once and reused."""

    key_id: str
    key: bytes = field(repr=False)
    _aead: AESGCM = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise ValueError(f"a data key has {KEY_BYTES} bytes, not {len(self.key)}")
        raw_id = self.key_id.encode("ascii")
        if not raw_id or len(raw_id) > MAX_KEY_ID_BYTES:
            raise ValueError(f"a key id has 1 to {MAX_KEY_ID_BYTES} ascii characters")
        object.__setattr__(self, "_aead", AESGCM(self.key))

    @classmethod
    def generate(cls, key_id: str) -> DataKey:
        return cls(key_id, AESGCM.generate_key(bit_length=KEY_BYTES * 8))


@dataclass(frozen=True, slots=True)
class TenantKeys:
    """All data keys a tenant has (``by_id``), the one new writes use, and its search key."""

    tenant_id: str
    current: DataKey
    by_id: dict[str, DataKey]
    search_key: bytes = field(repr=False)


def _part(value: str) -> bytes:
    raw = value.encode("utf-8")
    return len(raw).to_bytes(4, "big") + raw


def aad(tenant_id: str, collection: str, doc_id: str, field_name: str) -> bytes:
    """Associated data for one field of one document; length-prefixed, so parts cannot blur."""
    return _AAD_PREFIX + _part(tenant_id) + _part(collection) + _part(doc_id) + _part(field_name)


def seal(key: DataKey, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    raw_id = key.key_id.encode("ascii")
    header = bytes((VERSION, len(raw_id))) + raw_id
    return header + nonce + key._aead.encrypt(nonce, plaintext, aad)


def blob_key_id(blob: bytes) -> str:
    """The id of the key that sealed ``blob`` (what rotation asks of a stored record)."""
    if len(blob) < 2 or blob[0] != VERSION:
        raise UndecryptableError("not a sealed blob of a known version")
    end = 2 + blob[1]
    if len(blob) < end + NONCE_BYTES + TAG_BYTES:
        raise UndecryptableError("sealed blob too short")
    try:
        return blob[2:end].decode("ascii")
    except UnicodeDecodeError as exc:
        raise UndecryptableError("sealed blob has a malformed key id") from exc


def unseal(keys: TenantKeys, blob: bytes, aad: bytes) -> bytes:
    key_id = blob_key_id(blob)
    key = keys.by_id.get(key_id)
    if key is None:
        raise UndecryptableError(f"sealed with key {key_id!r}, which tenant does not hold")
    start = 2 + blob[1]
    nonce = blob[start : start + NONCE_BYTES]
    try:
        return key._aead.decrypt(nonce, blob[start + NONCE_BYTES :], aad)
    except InvalidTag as exc:
        raise UndecryptableError("sealed blob failed its check (tampered or misplaced)") from exc


def seal_str(key: DataKey, plaintext: str, aad: bytes) -> bytes:
    return seal(key, plaintext.encode("utf-8"), aad)


def unseal_str(keys: TenantKeys, blob: bytes, aad: bytes) -> str:
    return unseal(keys, blob, aad).decode("utf-8")
