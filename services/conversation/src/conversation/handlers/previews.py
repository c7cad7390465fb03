"""What the file processor does to an image's or a PDF's bytes: strip metadata,
measure, draw a thumbnail and, for images browsers cannot show, a PNG preview.

Pure functions on files in a scratch directory, blocking: the processor runs
them in a thread so the event loop stays free. Nothing here knows about tenants,
records or storage.
"""

from __future__ import annotations

import functools
import io
import threading
from dataclasses import dataclass
from pathlib import Path

import pillow_heif
import pypdfium2
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

THUMBNAIL_PX = 480
# A preview is for looking at: a 50-megapixel TIFF as a full-size PNG would be
# well over 100 MB, so its longer side is capped (the original stays downloadable).
PREVIEW_MAX_PX = 4096
THUMBNAIL_QUALITY = 80
# What browsers show in an <img>; anything else an image gets a PNG preview.
BROWSER_IMAGE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "WEBP", "AVIF"})
# Formats whose metadata is stripped by saving the pixels again. Animated images
# keep their bytes: re-encoding every frame costs more than GIF's comments are
# worth (GIF has no EXIF), and animated WebP rarely carries any.
STRIPPED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "TIFF", "HEIF"})
# Info keys that carry metadata rather than pixels; the ICC profile and the
# resolution stay (they change how the picture looks).
METADATA_KEYS = frozenset(
    {"exif", "xmp", "XML:com.adobe.xmp", "comment", "photoshop", "iptc", "Raw profile type exif"}
)
# TIFF keeps its metadata in tags: description, make, model, software, date,
# artist, host, copyright, XMP, IPTC, Photoshop, and the EXIF and GPS blocks.
TIFF_METADATA_TAGS = frozenset(
    {270, 271, 272, 305, 306, 315, 316, 33432, 700, 33723, 34377, 34665, 34853}
)
# The Pillow decoders each sniffed type may be opened with, and no other: Pillow
# would otherwise try every plugin it has on the bytes (EPS through Ghostscript,
# among others), whatever the sniffer said. A file of one of these types that
# does not decode is refused.
PILLOW_FORMATS: dict[str, tuple[str, ...]] = {
    "image/png": ("PNG",),
    "image/jpeg": ("JPEG", "MPO"),
    "image/gif": ("GIF",),
    "image/webp": ("WEBP",),
    "image/bmp": ("BMP", "DIB"),
    "image/tiff": ("TIFF",),
    "image/avif": ("AVIF",),
    # Phones' photos (pillow-heif's decoder, registered on first use).
    "image/heic": ("HEIF",),
    "image/heif": ("HEIF",),
}
# pdfium is not thread-safe: one render at a time per process.
_PDFIUM = threading.Lock()
# Orientations (EXIF 0x0112) that turn the picture a quarter: width and height swap.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})
_ORIENTATION = 0x0112


class ImageTooLarge(Exception):
    """More pixels than the tenant's policy allows (or a decompression bomb)."""


class Undecodable(Exception):
    """Bytes that claimed to be an image but are not one Pillow can read."""


@dataclass(frozen=True)
class Rendered:
    """Dimensions are those a viewer sees (EXIF orientation applied); for a PDF,
    its first page's in points (1/72 inch)."""

    width: int
    height: int
    thumbnail: bytes | None = None
    # Written into the scratch directory: a full-size PNG for an image browsers
    # cannot show, and the original saved again without its metadata.
    preview: Path | None = None
    stripped: Path | None = None


def pillow_decodes(content_type: str) -> bool:
    """Whether Pillow has a decoder for this type: such a file must decode."""
    return content_type in PILLOW_FORMATS


def render_image(
    src: Path, scratch: Path, content_type: str, *, max_pixels: int, keep_metadata: bool
) -> Rendered:
    """Raises ImageTooLarge over ``max_pixels``, Undecodable for broken bytes.

    The pixel cap is checked from the header before any pixel is decoded, here
    and not through ``Image.MAX_IMAGE_PIXELS``: that is one global for the whole
    process, and threads for tenants with other caps run at the same time.
    """
    try:
        formats = PILLOW_FORMATS.get(content_type)
        if formats is None:
            raise Undecodable(f"no decoder for {content_type}")
        if "HEIF" in formats:
            _register_heif()
        return _render_image(src, scratch, formats, max_pixels, keep_metadata)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc)) from exc
    except ImageTooLarge:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncated or corrupt data with any of these.
        raise Undecodable(str(exc)) from exc


def _render_image(
    src: Path, scratch: Path, formats: tuple[str, ...], max_pixels: int, keep_metadata: bool
) -> Rendered:
    with Image.open(src, formats=formats) as im:
        width, height = im.size
        if width * height > max_pixels:
            raise ImageTooLarge(f"{width}x{height} is over {max_pixels} pixels")
        fmt = im.format or ""
        # Phones' MPO photos are a JPEG followed by more JPEGs (depth maps,
        # previews, each with its own EXIF): saved again as their first image.
        animated = fmt != "MPO" and getattr(im, "n_frames", 1) > 1
        if im.getexif().get(_ORIENTATION) in _QUARTER_TURNS:
            width, height = height, width
        has_metadata = (
            any(key in im.info for key in METADATA_KEYS)
            or bool(getattr(im, "text", None))
            or any(tag in TIFF_METADATA_TAGS for tag in getattr(im, "tag_v2", {}))
        )
        stripped = None
        if not keep_metadata and has_metadata and fmt in STRIPPED_FORMATS and not animated:
            stripped = scratch / "stripped"
            _save_stripped(im, stripped)
        preview = None
        if fmt not in BROWSER_IMAGE_FORMATS:
            preview = scratch / "preview.png"
            _save_preview(im, preview)
    return Rendered(width, height, _thumbnail(src, formats), preview, stripped)


@functools.cache
def _register_heif() -> None:
    """Pillow learns HEIF from pillow-heif once, when the first such photo comes,
    not at import."""
    pillow_heif.register_heif_opener()


def _save_stripped(im: Image.Image, dest: Path) -> None:
    """Saves the pixels again (orientation applied, so nothing is lost with the
    EXIF) in the same format, with no EXIF, XMP, comments or text chunks."""
    fmt = "JPEG" if im.format == "MPO" else im.format
    im.seek(0)
    upright = ImageOps.exif_transpose(im)
    kept: dict[str, object] = {
        k: im.info[k] for k in ("icc_profile", "dpi", "transparency") if k in im.info
    }
    upright.info = {k: v for k, v in kept.items()}
    options: dict[str, object] = {"exif": b"", "xmp": b"", **kept}
    if fmt == "JPEG" and isinstance(im, JpegImagePlugin.JpegImageFile):
        # The original's quantization tables and chroma subsampling: the same
        # quality, not the encoder's default.
        options |= {
            "qtables": im.quantization,
            "subsampling": JpegImagePlugin.get_sampling(im),
            "progressive": bool(im.info.get("progressive")),
            "comment": b"",
        }
    elif fmt == "WEBP":
        options |= {"quality": 90, "method": 4}
    elif fmt == "TIFF":
        options |= {"tiffinfo": {}, "compression": im.info.get("compression", "raw")}
    elif fmt == "HEIF":
        # pillow-heif writes no EXIF or XMP when given none (b"" is not "none").
        options = {"quality": 90, **kept}
    upright.save(dest, format=fmt, **options)


def _save_preview(im: Image.Image, dest: Path) -> None:
    im.seek(0)
    upright = _displayable(ImageOps.exif_transpose(im))
    upright.thumbnail((PREVIEW_MAX_PX, PREVIEW_MAX_PX))
    upright.save(dest, format="PNG", optimize=False)


def _thumbnail(src: Path, formats: tuple[str, ...]) -> bytes:
    """Opened again: JPEG can then decode at a fraction of its size (draft),
    which makes a 12-megapixel photo's thumbnail several times cheaper."""
    with Image.open(src, formats=formats) as im:
        im.draft("RGB", (THUMBNAIL_PX * 2, THUMBNAIL_PX * 2))
        # An animated image's thumbnail is its first frame.
        im.seek(0)
        upright = _displayable(ImageOps.exif_transpose(im))
        upright.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        return _webp(upright)


def _displayable(im: Image.Image) -> Image.Image:
    """RGB or RGBA, the modes WebP and every viewer take."""
    if im.mode in ("RGB", "RGBA"):
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float greyscale: scale down to 8 bits instead of clipping.
        return im.convert("I").point(lambda v: v / 256).convert("RGB")
    has_alpha = im.mode in ("LA", "PA", "La") or "transparency" in im.info
    return im.convert("RGBA" if has_alpha else "RGB")


def _webp(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.save(out, format="WEBP", quality=THUMBNAIL_QUALITY, method=4)
    return out.getvalue()


def render_pdf(src: Path) -> Rendered | None:
    """The first page as a thumbnail, or None for a PDF that is encrypted,
    broken or empty (it stays downloadable, just without a picture)."""
    with _PDFIUM:
        try:
            pdf = pypdfium2.PdfDocument(src)
        except pypdfium2.PdfiumError:
            return None
        try:
            if len(pdf) == 0:
                return None
            page = pdf[0]
            width, height = page.get_size()
            if width <= 0 or height <= 0:
                return None
            scale = THUMBNAIL_PX / max(width, height)
            image = page.render(scale=scale).to_pil()
        except pypdfium2.PdfiumError:
            return None
        finally:
            pdf.close()
    return Rendered(round(width), round(height), _webp(_displayable(image)))
