"""The processor's image and PDF work on real bytes (pure logic: no servers)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image, TiffImagePlugin

from conversation.handlers import previews

GPS_IFD = 0x8825
# What the upload's sniffer says each test file is.
CT = {
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".tiff": "image/tiff",
    ".bmp": "image/bmp",
}
ORIENTATION = 0x0112


def photo(path: Path, size: tuple[int, int] = (640, 320), *, orientation: int = 1) -> Path:
    """A JPEG with a GPS position, a comment, XMP and an orientation, as phones write."""
    im = Image.new("RGB", size, (200, 30, 30))
    im.paste((10, 10, 240), (0, 0, size[0] // 2, size[1]))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "PhoneMaker"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">secret place</x:xmpmeta>'
    im.save(path, "JPEG", exif=exif, xmp=xmp, comment=b"taken at home", quality=85)
    return path


def png_header(path: Path, width: int, height: int) -> Path:
    """Just a PNG's signature and header: what a bomb shows before its pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def test_jpeg_loses_gps_exif_xmp_and_comment_but_keeps_its_look(tmp_path: Path) -> None:
    src = photo(tmp_path / "in.jpg")
    out = previews.render_image(
        src, tmp_path, CT[src.suffix], max_pixels=50_000_000, keep_metadata=False
    )

    assert out.stripped is not None
    with Image.open(out.stripped) as clean:
        assert clean.format == "JPEG"
        assert clean.size == (640, 320)
        exif = clean.getexif()
        assert not exif.get_ifd(GPS_IFD)
        assert 0x010F not in exif
        assert "xmp" not in clean.info
        assert "comment" not in clean.info
        assert clean.getpixel((10, 10))[2] > 200  # the blue half is still blue
    assert b"secret place" not in out.stripped.read_bytes()
    assert b"taken at home" not in out.stripped.read_bytes()
    assert (out.width, out.height) == (640, 320)
    assert out.preview is None  # browsers show JPEG


def test_kept_metadata_leaves_the_original_alone(tmp_path: Path) -> None:
    src = photo(tmp_path / "in.jpg")
    out = previews.render_image(
        src, tmp_path, CT[src.suffix], max_pixels=50_000_000, keep_metadata=True
    )
    assert out.stripped is None
    assert out.thumbnail is not None


def test_an_image_without_metadata_is_not_saved_again(tmp_path: Path) -> None:
    src = tmp_path / "plain.png"
    Image.new("RGB", (40, 30), "green").save(src, "PNG")
    out = previews.render_image(
        src, tmp_path, CT[src.suffix], max_pixels=50_000_000, keep_metadata=False
    )
    assert out.stripped is None
    assert (out.width, out.height) == (40, 30)


def test_orientation_is_applied_before_the_exif_goes(tmp_path: Path) -> None:
    # Orientation 6: the camera was turned a quarter; viewers show it 320 x 640.
    src = photo(tmp_path / "turned.jpg", orientation=6)
    out = previews.render_image(
        src, tmp_path, CT[src.suffix], max_pixels=50_000_000, keep_metadata=False
    )
    assert (out.width, out.height) == (320, 640)
    assert out.stripped is not None
    with Image.open(out.stripped) as clean:
        assert clean.size == (320, 640)
        assert ORIENTATION not in clean.getexif()
    assert out.thumbnail is not None
    with Image.open(io.BytesIO(out.thumbnail)) as thumb:
        assert thumb.size == (240, 480)


def test_thumbnail_is_webp_at_most_480_px(tmp_path: Path) -> None:
    src = tmp_path / "wide.png"
    Image.new("RGBA", (1600, 900), (0, 0, 0, 0)).save(src, "PNG")
    out = previews.render_image(
        src, tmp_path, CT[src.suffix], max_pixels=50_000_000, keep_metadata=False
    )
    assert out.thumbnail is not None
    with Image.open(io.BytesIO(out.thumbnail)) as thumb:
        assert thumb.format == "WEBP"
        assert max(thumb.size) == 480
        assert thumb.size == (480, 270)
        assert thumb.mode == "RGBA"


def test_a_small_image_is_not_blown_up(tmp_path: Path) -> None:
    src = tmp_path / "small.gif"
    Image.new("P", (50, 20)).save(src, "GIF")
    out = previews.render_image(
        src, tmp_path, CT[src.suffix], max_pixels=50_000_000, keep_metadata=False
    )
    assert out.thumbnail is not None
    with Image.open(io.BytesIO(out.thumbnail)) as thumb:
        assert thumb.size == (50, 20)


def test_animated_gif_thumbnail_is_its_first_frame(tmp_path: Path) -> None:
    src = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (60, 60), c) for c in ("red", "blue", "green")]
    frames[0].save(src, "GIF", save_all=True, append_images=frames[1:], duration=100)
    out = previews.render_image(
        src, tmp_path, CT[src.suffix], max_pixels=50_000_000, keep_metadata=False
    )
    assert out.thumbnail is not None
    with Image.open(io.BytesIO(out.thumbnail)) as thumb:
        r, g, b = thumb.convert("RGB").getpixel((30, 30))  # type: ignore[misc]
        assert r > 200 and g < 60 and b < 60


def test_tiff_gets_a_png_preview_and_loses_its_tags(tmp_path: Path) -> None:
    src = tmp_path / "scan.tiff"
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[270] = "scanned at the office"  # ImageDescription
    info[315] = "Jane Doe"  # Artist
    Image.new("RGB", (300, 200), "white").save(src, "TIFF", tiffinfo=info)
    out = previews.render_image(
        src, tmp_path, CT[src.suffix], max_pixels=50_000_000, keep_metadata=False
    )
    assert out.preview is not None
    with Image.open(out.preview) as preview:
        assert preview.format == "PNG"
        assert preview.size == (300, 200)
    assert out.stripped is not None
    assert b"Jane Doe" not in out.stripped.read_bytes()
    with Image.open(out.stripped) as clean:
        assert clean.format == "TIFF"


def test_a_phone_heic_photo_gets_a_png_preview_and_loses_its_gps(tmp_path: Path) -> None:
    src = tmp_path / "photo.heic"
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0)}  # GPS
    pillow_heif.register_heif_opener()
    Image.new("RGB", (320, 240), "teal").save(src, "HEIF", exif=exif.tobytes())
    out = previews.render_image(
        src, tmp_path, "image/heic", max_pixels=50_000_000, keep_metadata=False
    )
    assert (out.width, out.height) == (320, 240)
    assert out.preview is not None
    with Image.open(out.preview) as preview:
        assert preview.format == "PNG"
        assert preview.size == (320, 240)
    assert out.stripped is not None
    with Image.open(out.stripped, formats=("HEIF",)) as clean:
        assert clean.size == (320, 240)
        assert dict(clean.getexif()) == {}
    assert out.thumbnail is not None


def test_bmp_gets_a_png_preview(tmp_path: Path) -> None:
    src = tmp_path / "old.bmp"
    Image.new("RGB", (64, 48), "yellow").save(src, "BMP")
    out = previews.render_image(
        src, tmp_path, CT[src.suffix], max_pixels=50_000_000, keep_metadata=False
    )
    assert out.preview is not None
    assert out.thumbnail is not None


def test_pixels_over_the_policy_are_refused_from_the_header(tmp_path: Path) -> None:
    src = png_header(tmp_path / "big.png", 4000, 3000)
    with pytest.raises(previews.ImageTooLarge):
        previews.render_image(
            src, tmp_path, CT[src.suffix], max_pixels=10_000_000, keep_metadata=False
        )


def test_a_decompression_bomb_is_refused(tmp_path: Path) -> None:
    # A tiny file that claims 200 megapixels: Pillow's own guard fires even
    # under a tenant cap that would allow it.
    src = png_header(tmp_path / "bomb.png", 20_000, 10_000)
    with pytest.raises(previews.ImageTooLarge):
        previews.render_image(src, tmp_path, CT[src.suffix], max_pixels=10**12, keep_metadata=False)


def test_bytes_that_do_not_decode_are_undecodable(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    Image.new("RGB", (200, 200), "red").save(good, "PNG")
    broken = tmp_path / "broken.png"
    broken.write_bytes(good.read_bytes()[:80])
    with pytest.raises(previews.Undecodable):
        previews.render_image(
            broken, tmp_path, "image/png", max_pixels=50_000_000, keep_metadata=False
        )


def test_which_types_must_decode() -> None:
    assert previews.pillow_decodes("image/png")
    assert previews.pillow_decodes("image/tiff")
    assert previews.pillow_decodes("image/heic")
    assert not previews.pillow_decodes("image/svg+xml")


def test_only_the_sniffed_type_decoder_is_used(tmp_path: Path) -> None:
    # A GIF that the sniffer called a PNG is not opened by the GIF decoder.
    src = tmp_path / "mislabelled.png"
    Image.new("RGB", (20, 20)).save(src, "GIF")
    with pytest.raises(previews.Undecodable):
        previews.render_image(
            src, tmp_path, "image/png", max_pixels=50_000_000, keep_metadata=False
        )
    with pytest.raises(previews.Undecodable):
        previews.render_image(
            src, tmp_path, "application/postscript", max_pixels=50_000_000, keep_metadata=False
        )


def test_pdf_first_page_thumbnail(tmp_path: Path) -> None:
    src = tmp_path / "doc.pdf"
    first = Image.new("RGB", (595, 842), "white")
    first.paste((0, 0, 0), (50, 50, 545, 150))
    second = Image.new("RGB", (842, 595), "red")
    first.save(src, "PDF", save_all=True, append_images=[second], resolution=72)
    out = previews.render_pdf(src)
    assert out is not None
    assert (out.width, out.height) == (595, 842)
    assert out.thumbnail is not None
    with Image.open(io.BytesIO(out.thumbnail)) as thumb:
        assert thumb.format == "WEBP"
        assert max(thumb.size) == 480
        assert thumb.size[1] > thumb.size[0]  # the portrait first page, not the second


def test_broken_pdf_has_no_thumbnail(tmp_path: Path) -> None:
    src = tmp_path / "broken.pdf"
    src.write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n")
    assert previews.render_pdf(src) is None
