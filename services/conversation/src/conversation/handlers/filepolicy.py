"""The tenant's files policy (settings section ``files``): its validation, and
the one place its defaults are applied (docs/files.md#policy)."""

from __future__ import annotations

from dataclasses import dataclass

from confab_core.errors import InvalidArgument
from conversation.handlers import filetypes
from conversation.storage.settings import FilesRecord

MIB = 1024 * 1024
GIB = 1024 * MIB

DEFAULT_MAX_SIZE_BYTES = 25 * MIB
MAX_MAX_SIZE_BYTES = 5 * GIB
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
MIN_MAX_IMAGE_PIXELS = 1_000_000
# Below Pillow's own refusal (twice its 89 MP warning): larger is not decodable.
MAX_MAX_IMAGE_PIXELS = 150_000_000
DEFAULT_USER_QUOTA_BYTES = GIB
DEFAULT_TENANT_QUOTA_BYTES = 50 * GIB
# A petabyte: larger is a typo.
MAX_QUOTA_BYTES = 2**50

SVG_BLOCK = "block"
SVG_DOWNLOAD_ONLY = "download_only"
SVG_MODES = (SVG_BLOCK, SVG_DOWNLOAD_ONLY)


@dataclass(frozen=True, slots=True)
class FilePolicy:
    """The policy with every default filled in: what uploads are judged by."""

    max_size_bytes: int = DEFAULT_MAX_SIZE_BYTES
    allowed_kinds: frozenset[str] = frozenset(filetypes.KINDS)
    svg_mode: str = SVG_BLOCK
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    user_quota_bytes: int = DEFAULT_USER_QUOTA_BYTES
    tenant_quota_bytes: int = DEFAULT_TENANT_QUOTA_BYTES
    keep_image_metadata: bool = False

    def allows(self, sniffed: filetypes.Sniffed) -> bool:
        if sniffed.refused or sniffed.kind not in self.allowed_kinds:
            return False
        return not (sniffed.svg and self.svg_mode == SVG_BLOCK)

    def download_only(self, sniffed: filetypes.Sniffed) -> bool:
        return sniffed.svg


def policy(record: FilesRecord) -> FilePolicy:
    """The stored section (0 and empty: defaults) as the policy in force."""
    return FilePolicy(
        max_size_bytes=record.max_size_bytes or DEFAULT_MAX_SIZE_BYTES,
        allowed_kinds=frozenset(record.allowed_kinds or filetypes.KINDS),
        svg_mode=record.svg_mode or SVG_BLOCK,
        max_image_pixels=record.max_image_pixels or DEFAULT_MAX_IMAGE_PIXELS,
        user_quota_bytes=record.user_quota_bytes or DEFAULT_USER_QUOTA_BYTES,
        tenant_quota_bytes=record.tenant_quota_bytes or DEFAULT_TENANT_QUOTA_BYTES,
        keep_image_metadata=record.keep_image_metadata,
    )


def spelled_out(record: FilesRecord) -> FilesRecord:
    """The section as readers see it: every default written out."""
    p = policy(record)
    return FilesRecord(
        max_size_bytes=p.max_size_bytes,
        allowed_kinds=tuple(k for k in filetypes.KINDS if k in p.allowed_kinds),
        svg_mode=p.svg_mode,
        max_image_pixels=p.max_image_pixels,
        user_quota_bytes=p.user_quota_bytes,
        tenant_quota_bytes=p.tenant_quota_bytes,
        keep_image_metadata=p.keep_image_metadata,
    )


def _invalid(code: str, message: str) -> InvalidArgument:
    return InvalidArgument(message, code)


def validate(record: FilesRecord) -> FilesRecord:
    """The section an admin sent, checked; kinds in the catalogue's order."""
    if not 0 <= record.max_size_bytes <= MAX_MAX_SIZE_BYTES:
        raise _invalid(
            "invalid_max_size", f"files.max_size_bytes: 0 (default) or 1 to {MAX_MAX_SIZE_BYTES}"
        )
    unknown = [k for k in record.allowed_kinds if k not in filetypes.KINDS]
    if unknown:
        raise _invalid(
            "unknown_file_kind",
            f"files.allowed_kinds: {unknown[0][:32]!r} is not one of {filetypes.KINDS}",
        )
    if record.svg_mode not in ("", *SVG_MODES):
        raise _invalid("invalid_svg_mode", f"files.svg_mode: one of {SVG_MODES}")
    if record.max_image_pixels != 0 and not (
        MIN_MAX_IMAGE_PIXELS <= record.max_image_pixels <= MAX_MAX_IMAGE_PIXELS
    ):
        raise _invalid(
            "invalid_image_pixels",
            f"files.max_image_pixels: 0 (default) or {MIN_MAX_IMAGE_PIXELS} to "
            f"{MAX_MAX_IMAGE_PIXELS}",
        )
    for what, value in (
        ("user_quota_bytes", record.user_quota_bytes),
        ("tenant_quota_bytes", record.tenant_quota_bytes),
    ):
        if not 0 <= value <= MAX_QUOTA_BYTES:
            raise _invalid("invalid_file_quota", f"files.{what}: 0 (default) to {MAX_QUOTA_BYTES}")
    return FilesRecord(
        max_size_bytes=record.max_size_bytes,
        allowed_kinds=tuple(k for k in filetypes.KINDS if k in record.allowed_kinds),
        svg_mode=record.svg_mode,
        max_image_pixels=record.max_image_pixels,
        user_quota_bytes=record.user_quota_bytes,
        tenant_quota_bytes=record.tenant_quota_bytes,
        keep_image_metadata=record.keep_image_metadata,
    )
