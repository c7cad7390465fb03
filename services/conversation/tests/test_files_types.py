"""Sniffing (pure logic): the bytes decide the type, never the name."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import pytest
from PIL import Image

from conversation.handlers import filetypes as ft


def _image(fmt: str, size: tuple[int, int] = (4, 3)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "red").save(out, fmt)
    return out.getvalue()


def _zip(entries: list[tuple[str, bytes]], stored_first: bool = False) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for i, (name, data) in enumerate(entries):
            method = zipfile.ZIP_STORED if stored_first and i == 0 else zipfile.ZIP_DEFLATED
            z.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return out.getvalue()


def _ftyp(brand: bytes) -> bytes:
    return struct.pack(">I", 24) + b"ftyp" + brand + b"\x00\x00\x00\x00" + brand + b"\x00" * 64


CASES = [
    (_image("PNG"), "image/png", ft.IMAGE),
    (_image("JPEG"), "image/jpeg", ft.IMAGE),
    (_image("GIF"), "image/gif", ft.IMAGE),
    (_image("WEBP"), "image/webp", ft.IMAGE),
    (_image("BMP"), "image/bmp", ft.IMAGE),
    (_image("TIFF"), "image/tiff", ft.IMAGE),
    (_ftyp(b"heic"), "image/heic", ft.IMAGE),
    (_ftyp(b"avif"), "image/avif", ft.IMAGE),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "application/pdf", ft.PDF),
    (b"hello, world\n", ft.TEXT_PLAIN, ft.TEXT),
    ("h\u00e9llo \u2603\n".encode(), ft.TEXT_PLAIN, ft.TEXT),
    (b"<!doctype html><script>alert(1)</script>", ft.TEXT_PLAIN, ft.TEXT),
    (
        b'<?xml version="1.0"?>\n<!-- x --><svg xmlns="http://www.w3.org/2000/svg"/>',
        ft.SVG,
        ft.IMAGE,
    ),
    (b"\xef\xbb\xbf  <svg><script>alert(1)</script></svg>", ft.SVG, ft.IMAGE),
    (
        _zip([("[Content_Types].xml", b"<Types/>"), ("word/document.xml", b"<w/>")]),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ft.DOCUMENT,
    ),
    (
        _zip([("[Content_Types].xml", b"<Types/>"), ("xl/workbook.xml", b"<x/>")]),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ft.SPREADSHEET,
    ),
    (
        _zip(
            [
                ("[Content_Types].xml", b"presentationml.presentation.main+xml"),
                ("_rels/.rels", b"\x01" * 70_000),
                ("ppt/presentation.xml", b"<p/>"),
            ]
        )[: ft.SNIFF_BYTES],
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ft.PRESENTATION,
    ),
    (
        _zip(
            [("mimetype", b"application/vnd.oasis.opendocument.text"), ("content.xml", b"<x/>")],
            stored_first=True,
        ),
        "application/vnd.oasis.opendocument.text",
        ft.DOCUMENT,
    ),
    (_zip([("a.txt", b"a"), ("b.txt", b"b")]), "application/zip", ft.ARCHIVE),
    (b"\x1f\x8b\x08\x00" + b"\x00" * 60, "application/gzip", ft.ARCHIVE),
    (b"7z\xbc\xaf\x27\x1c" + b"\x00" * 60, "application/x-7z-compressed", ft.ARCHIVE),
    (
        b"a.txt".ljust(257, b"\x00") + b"ustar\x0000" + b"\x00" * 300,
        "application/x-tar",
        ft.ARCHIVE,
    ),
    (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 60, "audio/mpeg", ft.AUDIO),
    (b"OggS\x00\x02" + b"\x00" * 60, "audio/ogg", ft.AUDIO),
    (b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x00" * 60, "audio/wav", ft.AUDIO),
    (b"fLaC\x00\x00\x00\x22" + b"\x00" * 60, "audio/flac", ft.AUDIO),
    (_ftyp(b"M4A "), "audio/mp4", ft.AUDIO),
    (_ftyp(b"isom"), "video/mp4", ft.VIDEO),
    (_ftyp(b"qt  "), "video/quicktime", ft.VIDEO),
    (
        b"\x1aE\xdf\xa3\x9fB\x86\x81\x01B\xf7\x81\x01B\xf2\x81\x04B\xf3\x81\x08B\x82\x84webm"
        + b"\x00" * 60,
        "video/webm",
        ft.VIDEO,
    ),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500 + "WordDocument".encode("utf-16-le"),
        "application/msword",
        ft.DOCUMENT,
    ),
]


@pytest.mark.parametrize(("head", "content_type", "kind"), CASES)
def test_known_types(head: bytes, content_type: str, kind: str) -> None:
    found = ft.sniff(head, complete=True)
    assert (found.content_type, found.kind) == (content_type, kind)
    assert not found.refused


@pytest.mark.parametrize(
    "head",
    [
        b"MZ\x90\x00" + b"\x00" * 100,
        b"\x7fELF\x02\x01\x01" + b"\x00" * 100,
        b"\xcf\xfa\xed\xfe" + b"\x00" * 100,
        b"\xca\xfe\xba\xbe" + b"\x00" * 100,
        b"#!/bin/sh\nrm -rf /\n",
        _zip([("META-INF/MANIFEST.MF", b"Main-Class: X\n"), ("X.class", b"\xca\xfe")]),
        _zip([("AndroidManifest.xml", b"\x03\x00"), ("classes.dex", b"dex\n")]),
    ],
)
def test_programs_are_executables(head: bytes) -> None:
    found = ft.sniff(head, name="holiday.png", complete=True)
    assert found.kind == ft.EXECUTABLE and found.refused


@pytest.mark.parametrize(
    "head",
    [
        b"",
        bytes(range(256)) * 4,
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600,  # an OLE file that is no Office file
        b"\x00\x01\x02\x03binary",
    ],
)
def test_unknown_binary_is_refused(head: bytes) -> None:
    assert ft.sniff(head, complete=True).kind == ft.UNKNOWN


def test_the_name_never_decides_the_kind() -> None:
    png = _image("PNG")
    assert ft.sniff(png, name="setup.exe").content_type == "image/png"
    assert ft.sniff(b"MZ" + b"\x00" * 64, name="cat.png").kind == ft.EXECUTABLE


def test_the_name_only_picks_a_text_subtype() -> None:
    assert ft.sniff(b"a,b\n1,2\n", name="t.csv").content_type == "text/csv; charset=utf-8"
    assert ft.sniff(b"# Title\n", name="r.md").content_type == "text/markdown; charset=utf-8"
    assert ft.sniff(b'{"a": 1}', complete=True).content_type == "application/json"
    assert ft.sniff(b"a,b\n", name="x.html").content_type == ft.TEXT_PLAIN


def test_text_cut_inside_a_character_is_still_text() -> None:
    head = ("x" * 10 + "\u2603").encode()[:-1]
    assert ft.sniff(head).kind == ft.TEXT
    assert ft.sniff(head, complete=True).kind != ft.TEXT


def test_served_types_never_run_in_a_browser() -> None:
    assert ft.served_type(ft.SVG) == ft.OCTET_STREAM
    assert ft.served_type("text/plain; charset=utf-8") == "text/plain; charset=utf-8"
    assert ft.served_type("application/json") == ft.TEXT_PLAIN
    assert ft.inline("image/png") and ft.inline("application/pdf")
    assert not ft.inline(ft.SVG) and not ft.inline(ft.TEXT_PLAIN) and not ft.inline("image/tiff")


def test_image_pixels_from_the_first_bytes() -> None:
    big = _image("PNG", (2000, 1500))
    assert ft.image_pixels(big[:64], "image/png") == 3_000_000
    jpeg = _image("JPEG", (640, 480))
    assert ft.image_pixels(jpeg[:1024], "image/jpeg") == 640 * 480
    assert ft.image_pixels(b"not an image", "image/png") is None
    assert ft.image_pixels(big, "image/heic") is None


def test_a_decompression_bomb_header_is_over_any_limit() -> None:
    # A PNG header claiming 100000 x 100000 pixels, without the pixels.
    png = _image("PNG", (1, 1))
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    bomb = png[:8] + struct.pack(">I", 13) + b"IHDR" + ihdr + crc + png[33:]
    pixels = ft.image_pixels(bomb, "image/png")
    assert pixels is not None and pixels >= 10**10
