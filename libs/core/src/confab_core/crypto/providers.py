"""Key-encryption keys: the provider wraps each tenant's data keys, and only it can unwrap.

A stolen database (or backup) holds wrapped data keys only; reading it also
needs the provider: a key file kept apart from the data in dev, a KMS in
production, where the key-encryption key never leaves the KMS. The tenant is
bound into every wrap, so a wrapped key copied to another tenant does not unwrap.
"""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from confab_core.crypto.envelope import KEY_BYTES, NONCE_BYTES, UndecryptableError

_LOCAL_VERSION = 1
_LOCAL_AAD = b"confab.kek.local.v1\x00"
# What KMS binds each wrap to (its EncryptionContext); the same pair must be given to unwrap.
KMS_CONTEXT_KEY = "confab_tenant_id"
_UNWRAP_REFUSALS = frozenset(
    {
        "InvalidCiphertextException",
        "IncorrectKeyException",
        # The tenant's key was scheduled for deletion (crypto-shredded), or its alias is gone.
        "KMSInvalidStateException",
        "NotFoundException",
        "DisabledException",
    }
)


class KeyProvider(Protocol):
    async def wrap(self, tenant_id: str, key: bytes) -> bytes: ...

    async def unwrap(self, tenant_id: str, wrapped: bytes) -> bytes:
        """Raises ``UndecryptableError`` for a blob this provider did not wrap for this tenant."""
        ...

    async def destroy(self, tenant_id: str) -> None:
        """Destroys key-encryption material of the tenant's own, where the provider
        has any: then even copies of wrapped keys (backups) never unwrap again."""
        ...


class KeyFileError(Exception):
    """The local key file is missing or malformed: the service must not start."""


def write_local_key_file(path: Path) -> Path:
    """Create a dev key file (random, owner-only) unless one exists (dev fleets, tests)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = base64.b64encode(AESGCM.generate_key(bit_length=KEY_BYTES * 8)).decode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secret + "\n")
    return path


class LocalKeyFileProvider:
    """Dev provider: a key-encryption key read from a file (base64 of 32 bytes).

    The file is never created here: a service that cannot find it fails at start,
    rather than minting a new key that would orphan every existing wrapped key.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError as exc:
            raise KeyFileError(f"key file {path} does not exist") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"key file {path} cannot be read: {exc}") from exc
        try:
            kek = base64.b64decode(text, validate=True)
        except ValueError as exc:
            raise KeyFileError(f"key file {path} is not base64") from exc
        if len(kek) != KEY_BYTES:
            raise KeyFileError(f"key file {path} holds {len(kek)} bytes, not {KEY_BYTES}")
        self._aead = AESGCM(kek)

    async def wrap(self, tenant_id: str, key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, key, _LOCAL_AAD + tenant_id.encode("utf-8"))
        return bytes((_LOCAL_VERSION,)) + nonce + sealed

    async def unwrap(self, tenant_id: str, wrapped: bytes) -> bytes:
        if not wrapped or wrapped[0] != _LOCAL_VERSION:
            raise UndecryptableError("not a key wrapped by the local key file")
        nonce = wrapped[1 : 1 + NONCE_BYTES]
        try:
            return self._aead.decrypt(
                nonce, wrapped[1 + NONCE_BYTES :], _LOCAL_AAD + tenant_id.encode("utf-8")
            )
        except InvalidTag as exc:
            raise UndecryptableError("wrapped key failed its check") from exc

    async def destroy(self, tenant_id: str) -> None:
        """Nothing to destroy: one key-encryption key serves every tenant (dev only)."""


class AwsKmsProvider:
    """Wraps with the AWS KMS API (Encrypt/Decrypt), the tenant as EncryptionContext.

    Any KMS speaking that API works: AWS itself, or a local one through
    ``endpoint_url``. boto3 is synchronous; calls run in a worker thread, and they
    are rare (a data key is unwrapped once per cache lifetime, wrapped once per
    tenant and rotation).

    A ``key_id`` holding ``{tenant}`` (``alias/confab-{tenant}``) names an alias per
    tenant: its KMS key is created on the tenant's first wrap, and ``destroy``
    schedules its deletion, after which no copy of the tenant's wrapped keys
    unwraps. A plain ``key_id`` is one KMS key shared by every tenant.
    """

    def __init__(
        self,
        key_id: str,
        *,
        region: str,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        import boto3

        if not key_id:
            raise ValueError("a KMS key id (or ARN or alias) is required")
        if "{tenant}" in key_id and not key_id.startswith("alias/"):
            raise ValueError("a per-tenant KMS key is named by an alias: alias/...{tenant}...")
        self._key_id = key_id
        self._per_tenant = "{tenant}" in key_id
        self._known: set[str] = set()
        self._client: Any = boto3.session.Session().client(
            "kms",
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
        )

    def _key_for(self, tenant_id: str) -> str:
        return self._key_id.replace("{tenant}", tenant_id) if self._per_tenant else self._key_id

    def _ensure_tenant_key(self, alias: str) -> None:
        """Creates the tenant's KMS key and alias unless they exist (blocking; in a thread)."""
        from botocore.exceptions import ClientError

        if alias in self._known:
            return
        try:
            self._client.describe_key(KeyId=alias)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NotFoundException":
                raise
            created = self._client.create_key(Description=f"confab {alias}")
            key_id = created["KeyMetadata"]["KeyId"]
            try:
                self._client.create_alias(AliasName=alias, TargetKeyId=key_id)
            except ClientError as race:
                # Another replica named its key first: use theirs, drop ours.
                if race.response.get("Error", {}).get("Code") != "AlreadyExistsException":
                    raise
                self._client.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
        self._known.add(alias)

    async def wrap(self, tenant_id: str, key: bytes) -> bytes:
        key_id = self._key_for(tenant_id)
        if self._per_tenant:
            await asyncio.to_thread(self._ensure_tenant_key, key_id)
        response = await asyncio.to_thread(
            self._client.encrypt,
            KeyId=key_id,
            Plaintext=key,
            EncryptionContext={KMS_CONTEXT_KEY: tenant_id},
        )
        blob: bytes = response["CiphertextBlob"]
        return blob

    async def unwrap(self, tenant_id: str, wrapped: bytes) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = await asyncio.to_thread(
                self._client.decrypt,
                KeyId=self._key_for(tenant_id),
                CiphertextBlob=wrapped,
                EncryptionContext={KMS_CONTEXT_KEY: tenant_id},
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _UNWRAP_REFUSALS:
                raise UndecryptableError(f"KMS refused to unwrap: {code}") from exc
            raise
        plain: bytes = response["Plaintext"]
        return plain

    async def destroy(self, tenant_id: str) -> None:
        if self._per_tenant:
            await asyncio.to_thread(self._destroy, self._key_for(tenant_id))

    def _destroy(self, alias: str) -> None:
        from botocore.exceptions import ClientError

        self._known.discard(alias)
        try:
            key_id = self._client.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NotFoundException":
                return
            raise
        # KMS keeps a key at least 7 days before deleting it; it can no longer
        # decrypt from now on (KMSInvalidStateException), so nothing unwraps.
        self._client.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
        self._client.delete_alias(AliasName=alias)
