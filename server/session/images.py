"""The one way a picture from the wire becomes pixels: frames and stills alike.

Every image a bridge sends is untrusted and small on the wire but may claim to be
huge: a 1.3 KB JPEG can say 65500×65500 in its header, a 420 KB PNG can inflate to
gigabytes. So the header is read first (Pillow's plugins parse it lazily, without
decoding a pixel), and the picture is refused unless

- it is a JPEG (the contract's ``VideoEncoding``) or a PNG (read here since the
  start, so still taken, but only as big as the decode budget: it has no reduced
  decode in Pillow, so it is decoded at full size); any other format is refused by
  its signature, before Pillow sees it,
- each side and the pixels its header claims fit the ``ImageBudget``,
- and the pixels actually decoded fit ``budget.decode_pixels``: JPEG is decoded
  DCT-scaled (``draft``: each side ÷ 1, 2, 4 or 8, cheaper than a full decode).

The budget is this path's decompression-bomb guard, checked per picture against the
session's own limits. Pillow's guard (``Image.MAX_IMAGE_PIXELS``) is process-wide and
other libraries may change it, so it is not relied upon, nor changed: the plugins
are opened directly, and its check never runs. Whatever Pillow raises on a bad file
becomes a ``Recoverable``: the picture is dropped with a Notice, the session goes on.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from PIL import Image, ImageFile, JpegImagePlugin, PngImagePlugin

from server.codes import Code
from server.errors import Recoverable
from server.runtime.limits import MAX_PIXELS, STILL_MAX_PIXELS

__all__ = ["FRAME", "STILL", "Decoded", "ImageBudget", "decode_image"]

log = logging.getLogger(__name__)

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Formats a bridge might send by mistake, named in the Notice; none is decoded.
_OTHER_MAGIC = {
    b"GIF8": "GIF",
    b"RIFF": "RIFF (WebP?)",
    b"II*\0": "TIFF",
    b"MM\0*": "TIFF",
    b"BM": "BMP",
    b"\0\0\0\1": "H.264 (Annex B)",
    b"\0\0\1": "H.264 (Annex B)",
}
_DRAFT_SCALES: tuple[int, ...] = (1, 2, 4, 8)  # what libjpeg's DCT scaling offers
_PNG_JPEG_QUALITY = 90  # a PNG is passed on (to agents, alerts) as JPEG, like every frame


@dataclass(frozen=True, slots=True)
class ImageBudget:
    """What one picture may cost. ``max_pixels``: the model's cap (runtime/limits.py);
    the decode stops at 4× that (the processor fits it exactly, in the model thread;
    a resize here would cost as much again as the decode)."""

    what: str  # "video frame", "still": for the Notice
    max_pixels: int
    max_side: int  # each side a header may claim

    @property
    def decode_pixels(self) -> int:
        """The most pixels ever decoded (and handed on) for one picture."""
        return 4 * self.max_pixels

    @property
    def header_pixels(self) -> int:
        """The most pixels a JPEG header may claim: ÷ 8 a side, it fits the decode."""
        return 64 * self.max_pixels


# 8192 a side and 16.8 MP covers any glasses or phone camera's frame; a still (the
# phone's own photo, 48 MP sensors included) gets the still cap's 4× more.
FRAME = ImageBudget("video frame", MAX_PIXELS, 8192)
STILL = ImageBudget("still", STILL_MAX_PIXELS, 16384)


@dataclass(frozen=True, slots=True)
class Decoded:
    image: Image.Image  # RGB, at most ``budget.decode_pixels``
    format: str  # "JPEG" or "PNG"
    jpeg: bytes  # the picture as JPEG for whoever is handed bytes (agents, alerts)
    scale: int  # each side ÷ this at decode (1: full size)


def decode_image(data: bytes, budget: ImageBudget = FRAME) -> Decoded:
    """``data`` decoded within ``budget``, or ``Recoverable`` saying why it was dropped.
    Blocking: callers run it in the media pool."""
    fmt = _format(data, budget)
    try:
        im = _open(data, fmt)
        try:
            scale = _check_header(im, fmt, budget)
            if scale > 1:
                im.draft(im.mode, (im.width // scale, im.height // scale))
            w, h = im.size
            if w * h > budget.decode_pixels:  # the draft did not take (never for a JPEG)
                raise _too_many(budget, f"decodes at {w}×{h}", fmt)
            im.load()
            image = im.convert("RGB")  # a plain image (a copy): ``im`` is closed below
        finally:
            im.close()
        jpeg = data if fmt == "JPEG" else _as_jpeg(image)
    except Recoverable:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError) as e:
        raise _too_many(budget, "is too big to decode", fmt) from e
    except Exception as e:  # anything Pillow raises on a bad file is about the file
        # (OSError, ValueError, SyntaxError, struct.error, EOFError, IndexError, ...)
        log.debug("%s dropped: %s: %s", budget.what, type(e).__name__, e)
        raise Recoverable(
            Code.FRAME_CORRUPT,
            f"a {budget.what} could not be decoded as a {fmt} ({_reason(e)}); it was "
            f"dropped and the session goes on. Check the bridge's {fmt} encoder.",
        ) from e
    return Decoded(image, fmt, jpeg, scale)


def _format(data: bytes, budget: ImageBudget) -> str:
    """The format the first bytes announce; only JPEG and PNG go on to Pillow."""
    if data.startswith(_JPEG_MAGIC):
        return "JPEG"
    if data.startswith(_PNG_MAGIC):
        return "PNG"
    other = next((name for magic, name in _OTHER_MAGIC.items() if data.startswith(magic)), None)
    if other is not None:
        raise Recoverable(
            Code.FRAME_UNSUPPORTED,
            f"a {budget.what} in {other} was dropped; send JPEG (PNG is read too)",
        )
    raise Recoverable(
        Code.FRAME_CORRUPT,
        f"a {budget.what} of {len(data)} bytes is not an image (no JPEG or PNG signature) "
        "and was dropped; the session goes on. Check the bridge's JPEG encoder.",
    )


def _open(data: bytes, fmt: str) -> ImageFile.ImageFile:
    """The plugin itself, header only: ``Image.open`` would also run Pillow's global
    bomb check, which this path replaces with the budget."""
    fp = io.BytesIO(data)
    if fmt == "JPEG":
        return JpegImagePlugin.jpeg_factory(fp)  # a JPEG, or an MPO (phones' multi-picture)
    return PngImagePlugin.PngImageFile(fp)


def _check_header(im: ImageFile.ImageFile, fmt: str, budget: ImageBudget) -> int:
    """The draft scale the claimed size needs; ``Recoverable`` if it is over budget."""
    w, h = im.size
    if w < 1 or h < 1:
        raise ValueError(f"a {w}×{h} header")
    if fmt == "JPEG":  # DCT-scaled: the header may claim up to 64× the decode
        ok = max(w, h) <= budget.max_side and w * h <= budget.header_pixels
        scales = _DRAFT_SCALES
    else:  # decoded at full size
        ok = max(w, h) <= budget.max_side and w * h <= budget.decode_pixels
        scales = (1,)
    # The smallest scale that fits: the most detail within the budget. Within the
    # header limits ÷ 8 always fits (16.8 MP / 64 plus rounding is under 1 MP).
    scale = next((s for s in scales if -(-w // s) * -(-h // s) <= budget.decode_pixels), None)
    if not ok or scale is None:
        raise _too_many(budget, f"claims {w}×{h} pixels", fmt)
    return scale


def _too_many(budget: ImageBudget, claim: str, fmt: str) -> Recoverable:
    if fmt == "PNG":  # no reduced decode: the full size must fit
        limits = (
            f"a PNG may have at most {budget.max_side} px a side and "
            f"{budget.decode_pixels:,} pixels (a JPEG {budget.header_pixels:,})"
        )
    else:
        limits = f"at most {budget.max_side} px a side and {budget.header_pixels:,} pixels"
    return Recoverable(
        Code.FRAME_TOO_MANY_PIXELS,
        f"a {budget.what} that {claim} was dropped before decoding: {limits}. The model "
        f"sees about {budget.max_pixels:,} pixels of it anyway; send smaller pictures.",
    )


def _reason(e: Exception) -> str:
    """What went wrong, without Pillow's object reprs (``<_io.BytesIO object at 0x…>``)."""
    text = str(e)
    if not text or " at 0x" in text or len(text) > 120:
        return type(e).__name__
    return text


def _as_jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=_PNG_JPEG_QUALITY)
    return buf.getvalue()
