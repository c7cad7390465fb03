"""The upload stream's checks (pure logic): size as it arrives, type and image
dimensions from the first bytes, names and client ids."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from confab_core.errors import InvalidArgument, TooLarge
from conversation.handlers import filetypes
from conversation.handlers.checkedbytes import CheckedBytes, clean_name, valid_client_id
from conversation.handlers.filepolicy import FilePolicy

pytestmark = pytest.mark.asyncio


async def _chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def _drain(stream: CheckedBytes) -> bytes:
    return b"".join([chunk async for chunk in stream])


def _png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("L", size).save(out, "PNG")
    return out.getvalue()


async def test_bytes_pass_through_counted_and_hashed() -> None:
    data = b"line of text\n" * 20_000
    stream = CheckedBytes(_chunks(data, 7000), "notes.txt", FilePolicy(), 10**9)
    assert await _drain(stream) == data
    assert stream.size == len(data)
    assert stream.sha256 == hashlib.sha256(data).hexdigest()
    assert stream.sniffed == filetypes.Sniffed(filetypes.TEXT_PLAIN, filetypes.TEXT)


async def test_too_large_stops_as_soon_as_the_limit_is_passed() -> None:
    seen = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal seen
        while True:
            seen += 1
            yield b"a" * 100_000

    with pytest.raises(TooLarge) as err:
        await _drain(CheckedBytes(endless(), "a.txt", FilePolicy(), 1_000_000))
    assert err.value.code == "file_too_large"
    assert seen == 11


async def test_an_executable_is_refused_before_any_byte_passes() -> None:
    passed: list[bytes] = []
    stream = CheckedBytes(_chunks(b"MZ" + b"\x00" * 200_000), "cat.png", FilePolicy(), 10**9)
    with pytest.raises(InvalidArgument) as err:
        async for chunk in stream:
            passed.append(chunk)
    assert err.value.code == "file_type_not_allowed" and passed == []


async def test_kinds_and_svg_follow_the_policy() -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    with pytest.raises(InvalidArgument) as err:
        await _drain(CheckedBytes(_chunks(svg), "a.svg", FilePolicy(), 10**6))
    assert err.value.code == "file_type_not_allowed"
    stream = CheckedBytes(_chunks(svg), "a.svg", FilePolicy(svg_mode="download_only"), 10**6)
    assert await _drain(stream) == svg and stream.sniffed is not None and stream.sniffed.svg
    only_pdf = FilePolicy(allowed_kinds=frozenset({"pdf"}))
    with pytest.raises(InvalidArgument):
        await _drain(CheckedBytes(_chunks(b"text"), "a.txt", only_pdf, 10**6))


async def test_an_image_over_the_pixel_cap_is_refused_from_its_header() -> None:
    policy = FilePolicy(max_image_pixels=1_000_000)
    with pytest.raises(InvalidArgument) as err:
        await _drain(CheckedBytes(_chunks(_png((1001, 1000))), "big.png", policy, 10**9))
    assert err.value.code == "image_too_large"
    small = _png((1000, 1000))
    assert await _drain(CheckedBytes(_chunks(small), "ok.png", policy, 10**9)) == small


async def test_empty_files_and_oversized_chunks_are_refused() -> None:
    with pytest.raises(InvalidArgument) as err:
        await _drain(CheckedBytes(_chunks(b""), "a.txt", FilePolicy(), 10))
    assert err.value.code == "empty_file"
    with pytest.raises(InvalidArgument) as err:
        await _drain(
            CheckedBytes(
                _chunks(b"a" * (2 * 1024 * 1024), 2 * 1024 * 1024), "a", FilePolicy(), 10**9
            )
        )
    assert err.value.code == "chunk_too_large"


async def test_names_lose_paths_and_control_characters() -> None:
    assert clean_name("C:\\Users\\eve\\..\\report.pdf") == "report.pdf"
    assert clean_name("../../etc/passwd") == "passwd"
    assert clean_name("a\x00b\u202ec.txt") == "abc.txt"
    assert clean_name("  ") == "file" and clean_name("..") == "file"
    long = clean_name("x" * 300 + ".jpeg")
    assert len(long) == 255 and long.endswith(".jpeg")


async def test_client_ids() -> None:
    assert valid_client_id("abc_DEF-123") == "abc_DEF-123"
    for bad in ("", "a" * 65, "a b", "a/b"):
        with pytest.raises(InvalidArgument) as err:
            valid_client_id(bad)
        assert err.value.code == "invalid_client_id"
