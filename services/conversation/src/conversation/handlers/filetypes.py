"""What a file is, judged by its first bytes (never its name or the client's
Content-Type): a canonical MIME type, the kind the tenant's policy allows or
not (docs/files.md#kinds), and the type downloads are served as.

Pure logic. The upload handler calls ``sniff`` on the first ``SNIFF_BYTES`` of
the stream (or the whole file when shorter) and refuses what comes back
``executable`` or ``unknown`` whatever the policy says.
"""

from __future__ import annotations

import codecs
import io
import json
import re
import struct
import warnings
import zlib
from dataclasses import dataclass

import puremagic
from PIL import Image

from confab_core.errors import InvalidArgument

# One sealed frame: enough for every signature below, for the first local
# headers of an Office zip, and for image headers Pillow reads dimensions from.
SNIFF_BYTES = 64 * 1024

IMAGE = "image"
PDF = "pdf"
TEXT = "text"
DOCUMENT = "document"
SPREADSHEET = "spreadsheet"
PRESENTATION = "presentation"
ARCHIVE = "archive"
AUDIO = "audio"
VIDEO = "video"
KINDS: tuple[str, ...] = (
    IMAGE,
    PDF,
    TEXT,
    DOCUMENT,
    SPREADSHEET,
    PRESENTATION,
    ARCHIVE,
    AUDIO,
    VIDEO,
)
# Never allowed, whatever the policy: programs, and bytes nothing here recognises.
EXECUTABLE = "executable"
UNKNOWN = "unknown"

SVG = "image/svg+xml"
OCTET_STREAM = "application/octet-stream"
TEXT_PLAIN = "text/plain; charset=utf-8"

# Types browsers show inline without running anything: images they decode
# (not SVG, which is a document that can carry script) and PDF.
_INLINE = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "application/pdf"}
)
# Images browsers cannot show: the processor makes a PNG preview of them.
NEEDS_PREVIEW = frozenset({"image/bmp", "image/tiff", "image/heic", "image/heif"})
# Pillow reads these dimensions from a header (HEIC/AVIF need plugins: the
# processor checks them when it decodes).
_PILLOW_DIMENSIONS = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/tiff"}
)

# puremagic's extension (its first, most confident match that is listed here)
# to the canonical type and kind. Zips, OLE files, text, SVG and the ISO media
# family are told apart below, where one signature means several things.
_BY_EXTENSION: dict[str, tuple[str, str]] = {
    ".png": ("image/png", IMAGE),
    ".jpg": ("image/jpeg", IMAGE),
    ".jpeg": ("image/jpeg", IMAGE),
    ".jfif": ("image/jpeg", IMAGE),
    ".gif": ("image/gif", IMAGE),
    ".webp": ("image/webp", IMAGE),
    ".bmp": ("image/bmp", IMAGE),
    ".tif": ("image/tiff", IMAGE),
    ".tiff": ("image/tiff", IMAGE),
    ".pdf": ("application/pdf", PDF),
    ".gz": ("application/gzip", ARCHIVE),
    ".7z": ("application/x-7z-compressed", ARCHIVE),
    ".tar": ("application/x-tar", ARCHIVE),
    ".mp3": ("audio/mpeg", AUDIO),
    ".mpga": ("audio/mpeg", AUDIO),
    ".ogg": ("audio/ogg", AUDIO),
    ".wav": ("audio/wav", AUDIO),
    ".flac": ("audio/flac", AUDIO),
    ".webm": ("video/webm", VIDEO),
}

# ISO base media (ftyp box) major brands.
_FTYP_BRANDS: dict[bytes, tuple[str, str]] = {
    b"heic": ("image/heic", IMAGE),
    b"heix": ("image/heic", IMAGE),
    b"mif1": ("image/heif", IMAGE),
    b"msf1": ("image/heif", IMAGE),
    b"avif": ("image/avif", IMAGE),
    b"avis": ("image/avif", IMAGE),
    b"M4A ": ("audio/mp4", AUDIO),
    b"M4B ": ("audio/mp4", AUDIO),
    b"qt  ": ("video/quicktime", VIDEO),
}

_OOXML = {
    "word/": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", DOCUMENT),
    "xl/": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", SPREADSHEET),
    "ppt/": (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        PRESENTATION,
    ),
}
# What [Content_Types].xml names as the main part, when the part itself is
# further into the zip than the first bytes reach.
_OOXML_MAIN = {
    b"wordprocessingml.document.main": "word/",
    b"spreadsheetml.sheet.main": "xl/",
    b"presentationml.presentation.main": "ppt/",
}
_ODF = {
    "application/vnd.oasis.opendocument.text": DOCUMENT,
    "application/vnd.oasis.opendocument.spreadsheet": SPREADSHEET,
    "application/vnd.oasis.opendocument.presentation": PRESENTATION,
}
# Directory entry names (UTF-16LE) of the legacy Office formats.
_OLE_STREAMS = (
    ("WordDocument".encode("utf-16-le"), "application/msword", DOCUMENT),
    ("Workbook".encode("utf-16-le"), "application/vnd.ms-excel", SPREADSHEET),
    ("Book".encode("utf-16-le"), "application/vnd.ms-excel", SPREADSHEET),
    ("PowerPoint Document".encode("utf-16-le"), "application/vnd.ms-powerpoint", PRESENTATION),
)

_EXECUTABLE_MAGIC = (
    b"MZ",  # PE / DOS
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",  # Mach-O 32 / 64, both byte orders
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",  # Mach-O universal, and Java class files
    b"#!",  # scripts
    b"dex\n",  # Android
    b"\x00asm",  # WebAssembly
)

# Text a client names like this is served under that text type; the bytes still
# have to be UTF-8 text for the name to count at all.
_TEXT_BY_SUFFIX = {
    ".csv": "text/csv; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".markdown": "text/markdown; charset=utf-8",
}
_BOMB = 2**62
_XML_PROLOGUE = re.compile(
    rb"\A(?:\s|<\?xml[^>]*\?>|<!--.*?-->|<!DOCTYPE[^>\[]*(?:\[.*?\])?\s*>)*<svg[\s>/]",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class Sniffed:
    content_type: str
    kind: str

    @property
    def refused(self) -> bool:
        return self.kind in (EXECUTABLE, UNKNOWN)

    @property
    def svg(self) -> bool:
        return self.content_type == SVG


def type_not_allowed(what: str) -> InvalidArgument:
    return InvalidArgument(f"files of this type are not allowed: {what}", "file_type_not_allowed")


def sniff(head: bytes, name: str = "", complete: bool = False) -> Sniffed:
    """What ``head`` (the first bytes; ``complete``: the whole file) is.

    ``name`` only picks among text types (csv, markdown), never the kind.
    """
    if not head:
        return Sniffed(OCTET_STREAM, UNKNOWN)
    if head.startswith(_EXECUTABLE_MAGIC):
        return Sniffed(OCTET_STREAM, EXECUTABLE)
    if head.startswith(b"PK\x03\x04"):
        return _zip(head)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return _ole(head)
    if head[4:8] == b"ftyp":
        return _iso_media(head)
    if head.startswith(b"%PDF-"):
        return Sniffed("application/pdf", PDF)
    if _utf8_text(head, complete):
        return _text(head, name, complete)
    return _by_magic(head)


def _by_magic(head: bytes) -> Sniffed:
    try:
        matches = puremagic.magic_string(head)
    except (puremagic.PureError, ValueError):
        return Sniffed(OCTET_STREAM, UNKNOWN)
    for match in matches:
        found = _BY_EXTENSION.get(match.extension.lower())
        if found is not None:
            return Sniffed(*found)
    return Sniffed(OCTET_STREAM, UNKNOWN)


def _utf8_text(head: bytes, complete: bool) -> bool:
    if b"\x00" in head:
        return False
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        # Not final unless complete: the first bytes may end inside a character.
        decoder.decode(head, final=complete)
    except UnicodeDecodeError:
        return False
    # Control characters other than whitespace mark binary data.
    return not any(b < 0x09 or (0x0E <= b < 0x20 and b != 0x1B) for b in head[:4096])


def _text(head: bytes, name: str, complete: bool) -> Sniffed:
    body = head.removeprefix(codecs.BOM_UTF8)
    if _XML_PROLOGUE.match(body):
        return Sniffed(SVG, IMAGE)
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    if suffix in _TEXT_BY_SUFFIX:
        return Sniffed(_TEXT_BY_SUFFIX[suffix], TEXT)
    if complete and body.lstrip()[:1] in (b"{", b"["):
        try:
            json.loads(body)
        except ValueError:
            pass
        else:
            return Sniffed("application/json", TEXT)
    # HTML and every other text: plain text, never a document a browser renders.
    return Sniffed(TEXT_PLAIN, TEXT)


def _iso_media(head: bytes) -> Sniffed:
    brand = head[8:12]
    found = _FTYP_BRANDS.get(brand)
    if found is not None:
        return Sniffed(*found)
    return Sniffed("video/mp4", VIDEO)


def _zip(head: bytes) -> Sniffed:
    """Zips are archives unless their first entries say they are an Office
    document (OOXML: [Content_Types].xml and word/, xl/ or ppt/; ODF: a stored
    ``mimetype`` entry first) or a program (a jar's manifest, an apk's)."""
    names: list[str] = []
    content_types = b""
    offset = 0
    while head.startswith(b"PK\x03\x04", offset) and offset + 30 <= len(head):
        (flags, method, csize, name_len, extra_len) = struct.unpack_from(
            "<6xHH8xI4xHH", head, offset
        )
        start = offset + 30 + name_len + extra_len
        name = head[offset + 30 : offset + 30 + name_len].decode("utf-8", "replace")
        names.append(name)
        data = head[start : start + csize] if csize else head[start:]
        if not names[:-1] and name == "mimetype" and method == 0:
            odf = data.decode("ascii", "replace").strip()
            if odf in _ODF:
                return Sniffed(odf, _ODF[odf])
        if name == "[Content_Types].xml":
            content_types = _inflate(data) if method == 8 else data
        # Bit 3: sizes follow the data, so the next header cannot be found.
        if flags & 0x08 or not csize:
            break
        offset = start + csize
    if any(n in ("META-INF/MANIFEST.MF", "AndroidManifest.xml", "classes.dex") for n in names):
        return Sniffed(OCTET_STREAM, EXECUTABLE)
    if "[Content_Types].xml" in names:
        for prefix, found in _OOXML.items():
            if any(n.startswith(prefix) for n in names):
                return Sniffed(*found)
        for marker, prefix in _OOXML_MAIN.items():
            if marker in content_types:
                return Sniffed(*_OOXML[prefix])
    return Sniffed("application/zip", ARCHIVE)


def _inflate(data: bytes) -> bytes:
    try:
        return zlib.decompressobj(-15).decompress(data, 64 * 1024)
    except zlib.error:
        return b""


def _ole(head: bytes) -> Sniffed:
    """Legacy Office files are OLE compound files, as are installers (MSI):
    only one whose directory, within the first bytes, names a Word, Excel or
    PowerPoint stream is a document."""
    for stream, content_type, kind in _OLE_STREAMS:
        if stream in head:
            return Sniffed(content_type, kind)
    return Sniffed(OCTET_STREAM, UNKNOWN)


def served_type(content_type: str) -> str:
    """What a download's Content-Type may say: the sniffed type unless a
    browser could run it (SVG is served as a download of octet-stream)."""
    if content_type == SVG:
        return OCTET_STREAM
    if content_type.startswith("text/") or content_type == "application/json":
        return content_type if "charset" in content_type else TEXT_PLAIN
    return content_type


def inline(content_type: str) -> bool:
    """Whether a download may be shown in the page rather than saved."""
    return content_type in _INLINE


def image_pixels(head: bytes, content_type: str) -> int | None:
    """Width x height from an image's header in its first bytes; None when the
    header does not tell (the processor checks when it decodes the image)."""
    if content_type not in _PILLOW_DIMENSIONS:
        return None
    with warnings.catch_warnings():
        # Pillow warns about large images; the caller decides what is too large.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(head)) as image:
                width, height = image.size
        except Image.DecompressionBombError:
            # Over twice Pillow's own limit, far above any policy's.
            return _BOMB
        except (OSError, ValueError, SyntaxError):
            return None
    return int(width) * int(height)
