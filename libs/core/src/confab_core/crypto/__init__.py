"""Envelope encryption of fields at rest: data keys per tenant, wrapped by a key provider.

See docs/security.md, "Encryption at rest, keys and rotation".
"""

from confab_core.crypto.blind import blind_tokens, normalise
from confab_core.crypto.envelope import (
    KEY_BYTES,
    DataKey,
    KeysShreddedError,
    TenantKeys,
    UndecryptableError,
    aad,
    blob_key_id,
    seal,
    seal_str,
    unseal,
    unseal_str,
)
from confab_core.crypto.keysource import CachingKeySource, KeySource
from confab_core.crypto.providers import (
    AwsKmsProvider,
    KeyFileError,
    KeyProvider,
    LocalKeyFileProvider,
    write_local_key_file,
)
from confab_core.crypto.remote import KeyServiceSource

__all__ = [
    "KEY_BYTES",
    "AwsKmsProvider",
    "CachingKeySource",
    "DataKey",
    "KeyFileError",
    "KeyProvider",
    "KeyServiceSource",
    "KeySource",
    "KeysShreddedError",
    "LocalKeyFileProvider",
    "TenantKeys",
    "UndecryptableError",
    "aad",
    "blind_tokens",
    "blob_key_id",
    "normalise",
    "seal",
    "seal_str",
    "unseal",
    "unseal_str",
    "write_local_key_file",
]
