"""The tenant settings' ``files`` section: defaults in one place, validation
codes, the public part, and the policy uploads are judged by."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from confab.conversation.v1 import settings_pb2
from confab_core.errors import InvalidArgument
from confab_core.identity import ROLE_MEMBER, ROLE_TENANT_ADMIN
from conversation import settings_servicer
from conversation.handlers import filepolicy, filetypes
from conversation.handlers.audit import AuditTrail
from conversation.handlers.tenant_settings import BRANDING, FILES, SettingsHandler
from conversation.handlers.unit import UnitOfWork
from conversation.storage.db import Database
from conversation.storage.settings import FilesRecord, SettingsRecord

from .conftest import TENANT_A, TENANT_B, user

pytestmark = pytest.mark.asyncio

ADMIN = user("root", TENANT_A, ROLE_MEMBER, ROLE_TENANT_ADMIN)
MEMBER = user("mia", TENANT_A, ROLE_MEMBER)

STRICT = FilesRecord(
    max_size_bytes=5 * filepolicy.MIB,
    allowed_kinds=("pdf", "image"),
    svg_mode="download_only",
    max_image_pixels=2_000_000,
    user_quota_bytes=10 * filepolicy.MIB,
    tenant_quota_bytes=100 * filepolicy.MIB,
    keep_image_metadata=True,
)


@pytest.fixture
def handler(unit: UnitOfWork) -> SettingsHandler:
    trail = AuditTrail(unit.database, unit.clock, unit.locks)
    return SettingsHandler(unit.database, unit.clock, trail, asyncio.Event())


async def test_defaults_are_spelled_out_before_any_save(handler: SettingsHandler) -> None:
    files = (await handler.get(ADMIN)).settings.files
    assert files == FilesRecord(
        max_size_bytes=25 * filepolicy.MIB,
        allowed_kinds=filetypes.KINDS,
        svg_mode="block",
        max_image_pixels=50_000_000,
        user_quota_bytes=filepolicy.GIB,
        tenant_quota_bytes=50 * filepolicy.GIB,
        keep_image_metadata=False,
    )
    assert await handler.file_policy(TENANT_A) == filepolicy.FilePolicy()


async def test_a_saved_section_is_the_policy_and_public(handler: SettingsHandler) -> None:
    saved = await handler.update(ADMIN, SettingsRecord(files=STRICT), [FILES], 0)
    # Kinds come back in the catalogue's order.
    assert saved.settings.files == replace(STRICT, allowed_kinds=("image", "pdf"))
    policy = await handler.file_policy(TENANT_A)
    assert policy.allowed_kinds == {"image", "pdf"} and policy.max_image_pixels == 2_000_000
    assert policy.allows(filetypes.Sniffed(filetypes.SVG, filetypes.IMAGE))
    assert not policy.allows(filetypes.Sniffed("application/zip", filetypes.ARCHIVE))
    public = settings_servicer.public_message(await handler.public(MEMBER))
    assert public.files.max_size_bytes == 5 * filepolicy.MIB
    assert public.files.svg_mode == settings_pb2.SVG_MODE_DOWNLOAD_ONLY
    # Another section's write keeps it; another tenant has the defaults.
    await handler.update(ADMIN, SettingsRecord(), [BRANDING], 1)
    assert (await handler.file_policy(TENANT_A)).max_size_bytes == 5 * filepolicy.MIB
    assert await handler.file_policy(TENANT_B) == filepolicy.FilePolicy()


async def test_the_default_policy_blocks_svg_and_programs() -> None:
    policy = filepolicy.FilePolicy()
    assert not policy.allows(filetypes.Sniffed(filetypes.SVG, filetypes.IMAGE))
    assert not policy.allows(filetypes.Sniffed("application/octet-stream", filetypes.EXECUTABLE))
    assert not policy.allows(filetypes.Sniffed("application/octet-stream", filetypes.UNKNOWN))
    assert policy.allows(filetypes.Sniffed("image/png", filetypes.IMAGE))


INVALID = [
    (FilesRecord(max_size_bytes=-1), "invalid_max_size"),
    (FilesRecord(max_size_bytes=5 * filepolicy.GIB + 1), "invalid_max_size"),
    (FilesRecord(allowed_kinds=("image", "executable")), "unknown_file_kind"),
    (FilesRecord(svg_mode="inline"), "invalid_svg_mode"),
    (FilesRecord(max_image_pixels=999_999), "invalid_image_pixels"),
    (FilesRecord(max_image_pixels=150_000_001), "invalid_image_pixels"),
    (FilesRecord(user_quota_bytes=-1), "invalid_file_quota"),
    (FilesRecord(tenant_quota_bytes=2**51), "invalid_file_quota"),
]


@pytest.mark.parametrize(("files", "code"), INVALID)
async def test_invalid_values_get_a_stable_code_and_write_nothing(
    handler: SettingsHandler, db: Database, files: FilesRecord, code: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        await handler.update(ADMIN, SettingsRecord(files=files), [FILES], 0)
    assert err.value.code == code
    assert await db.db["tenant_settings"].count_documents({}) == 0


async def test_the_servicer_translates_an_unknown_svg_mode_to_a_refusal() -> None:
    message = settings_pb2.TenantSettings(
        files=settings_pb2.FilePolicy(svg_mode=settings_pb2.SvgMode.ValueType(7))
    )
    with pytest.raises(InvalidArgument) as err:
        filepolicy.validate(settings_servicer.draft(message).files)
    assert err.value.code == "invalid_svg_mode"
