"""Files made in code for the files e2e test and bench: a JPEG with GPS EXIF, a PDF
rendered by Pillow, a minimal PE executable, the EICAR test string; and the REST
calls of the files API (docs/files.md) as small helpers."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import httpx
from PIL import Image

MIB = 1024 * 1024
GPS_IFD = 0x8825


def jpeg_with_gps(width: int = 640, height: int = 480) -> bytes:
    """A photo whose EXIF carries a camera model and a GPS position."""
    img = Image.new("RGB", (width, height), (200, 30, 30))
    for x in range(0, width, 8):
        for y in range(0, height, 8):
            img.putpixel((x, y), (x % 256, y % 256, 90))
    exif = Image.Exif()
    exif[0x0110] = "Confab Cam"
    gps = exif.get_ifd(GPS_IFD)
    gps.update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)})
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif, quality=85)
    return out.getvalue()


def noisy_jpeg(target_bytes: int) -> bytes:
    """A photo of about ``target_bytes`` (noise compresses badly, like a real photo's
    detail), with GPS EXIF."""
    side = 512
    while True:
        img = Image.effect_noise((side * 4 // 3, side), 80).convert("RGB")
        exif = Image.Exif()
        exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 31.0, 12.0)})
        out = io.BytesIO()
        img.save(out, "JPEG", exif=exif, quality=95)
        if out.tell() >= target_bytes:
            return out.getvalue()
        side = int(side * max(1.1, (target_bytes / out.tell()) ** 0.5))


def png(width: int = 32, height: int = 24) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 220)).save(out, "PNG")
    return out.getvalue()


def png_bomb(side: int = 10_000) -> bytes:
    """A PNG whose header claims side x side pixels (100 MP at the default, over the
    default policy's 50 MP) over a few bytes of zlib data: a decompression bomb,
    judged by its header alone."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(document.cookie)</script></svg>"
)


def pdf() -> bytes:
    """A one-page PDF (Pillow's PDF writer: a valid file pdfium renders)."""
    img = Image.new("RGB", (300, 200), "white")
    for x in range(40, 260):
        img.putpixel((x, 100), (0, 0, 0))
    out = io.BytesIO()
    img.save(out, "PDF", resolution=72.0)
    return out.getvalue()


def pe_executable() -> bytes:
    """The smallest recognisable Windows executable: a DOS header whose e_lfanew
    points at a PE signature, a COFF header and an empty optional header."""
    dos = bytearray(64)
    dos[0:2] = b"MZ"
    dos[0x3C:0x40] = struct.pack("<I", 64)
    coff = struct.pack("<HHIIIHH", 0x14C, 0, 0, 0, 0, 0xE0, 0x0102)
    optional = struct.pack("<H", 0x10B) + bytes(0xE0 - 2)
    return bytes(dos) + b"PE\0\0" + coff + optional


def eicar() -> bytes:
    """The standard antivirus test file, assembled here so that no file of the
    repository is itself the signature."""
    parts = [r"X5O!P%@AP[4\PZX54(P^)7CC)7}$", "EICAR-STANDARD-", "ANTIVIRUS-TEST-FILE!$H+H*"]
    return "".join(parts).encode()


def padded_pdf(size: int) -> bytes:
    """``size`` bytes that sniff as a PDF."""
    head = b"%PDF-1.4\n%"
    return head + b"0" * (size - len(head))


# --- The REST shapes, in one place ---------------------------------------------------


def file_of(body: dict[str, Any]) -> dict[str, Any]:
    """The file in an answer: nested in a direct upload's (``{"file": ..., "url": ...}``),
    the answer itself elsewhere (uploads, ``complete``, ``file:updated``)."""
    inner = body.get("file")
    return dict(inner) if isinstance(inner, dict) else body


async def upload(
    api: httpx.AsyncClient,
    conversation_id: str,
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
    client_id: str | None = None,
) -> httpx.Response:
    return await api.post(
        f"/conversations/{conversation_id}/files",
        files={"file": (name, data, content_type)},
        data={"client_id": client_id} if client_id else None,
        timeout=120,
    )


async def set_file_policy(admin: httpx.AsyncClient, **policy: Any) -> httpx.Response:
    """A tenant admin changes the files section (read first: a PUT needs its ETag)."""
    current = await admin.get("/settings/files")
    assert current.status_code == 200, current.text
    return await admin.put(
        "/settings/files", json=policy, headers={"If-Match": current.headers["etag"]}
    )


async def get_file(api: httpx.AsyncClient, conversation_id: str, file_id: str) -> httpx.Response:
    return await api.get(f"/conversations/{conversation_id}/files/{file_id}")


async def list_files(api: httpx.AsyncClient, conversation_id: str) -> list[dict[str, Any]]:
    resp = await api.get(f"/conversations/{conversation_id}/files")
    assert resp.status_code == 200, resp.text
    return list(resp.json()["files"])


def absolute(gateway_url: str, url: str) -> str:
    """A download URL as the gateway gives it (absolute, or a path on the gateway)."""
    if url.startswith(("http://", "https://")):
        return url
    if url.startswith("/api/"):
        return gateway_url + url
    return f"{gateway_url}/api/v1{url}"
