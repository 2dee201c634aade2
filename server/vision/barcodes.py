"""Barcodes in a frame or a still, decoded on the server with zxing-cpp.

``decode_barcodes`` makes one plain pass and, only when that finds nothing, a few
harder ones whose cost is bounded by pixel counts, not by time (so the same image
always costs the same): a 2× upscale for small frames, where a code far from the
lens has modules of about a pixel, and two passes rotated by ±30° for linear codes
held at a slant (zxing's own ``try_rotate`` only turns by 90°, and a 1-D scan line
tolerates roughly ±20° of skew, so 0°, ±30° and their 90° turns cover every angle;
QR and other matrix codes are found at any angle by the plain pass).

Measured with benchmarks/bench_barcodes.py on the 2-core CI machine, zxing-cpp 3.1.1,
CPU time over two runs (wall time was 2–3× that: the machine was shared and loaded):

=================  ==============  ===============  ======================
image              code found      slanted code     no code (every pass)
=================  ==============  ===============  ======================
640×480 frame      7–9 ms          48–61 ms         66–107 ms (≤ 3.2 MP)
2000×1500 still    38–58 ms        99–118 ms        88–98 ms  (≤ 4.6 MP)
=================  ==============  ===============  ======================

Stills above ``max_pixels`` are decoded downscaled: zxing's cost grows faster than
the pixel count above ~3 MP (a 12 MP still took ~340 ms for one plain pass).

It blocks the calling thread: callers run it in an executor.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from PIL import Image

from server.vision.box import Box, where_in_view

__all__ = [
    "Barcode",
    "BarcodeMemory",
    "BarcodeOptions",
    "CodeKind",
    "decode_barcodes",
    "describe",
    "gtin_check_digit_ok",
    "worst_case_pixels",
]

log = logging.getLogger(__name__)

INSTALL_HINT = "barcode reading needs zxing-cpp ≥ 3.1: pip install zxing-cpp"


class CodeKind(StrEnum):
    PRODUCT = "product"  # a GTIN: EAN-13/8, UPC-A/E, ISBN, ITF-14
    LINK = "link"  # any code whose text is a web address
    OTHER = "other"


# zxing-cpp ≥ 3 names formats like this (str(BarcodeFormat)); these carry a GTIN
# whose last digit is a GS1 mod-10 check digit.
PRODUCT_FORMATS = frozenset({"EAN-13", "EAN-8", "UPC-A", "UPC-E", "ISBN", "ITF-14"})

_URL = re.compile(r"(?i)^(https?://|www\.)\S+$")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Barcode:
    format: str  # zxing's name: "EAN-13", "UPC-A", "QR Code", "Code 128", …
    text: str  # as printed under the bars for EAN/UPC (UPC-A: 12 digits)
    kind: CodeKind
    box: Box  # in pixels of the image given to decode_barcodes
    image_size: tuple[int, int]  # (width, height) of that image, for where_in_view
    # EAN/UPC only: False when zxing read the bars but the check digit disagrees
    # (a misprint or a misread); None for codes that have no GS1 check digit.
    check_digit_ok: bool | None = None

    @property
    def where(self) -> str:
        return where_in_view(self.box, self.image_size)


@dataclass(frozen=True, slots=True)
class BarcodeOptions:
    max_pixels: int = 3_200_000  # larger images are downscaled before any pass
    try_harder: bool = True  # the extra passes, only when the plain one finds nothing
    upscale_below_pixels: int = 500_000  # frames up to this size also get a 2× pass
    rotations: tuple[float, ...] = (30.0, -30.0)  # degrees, linear codes only
    rotation_pixels: int = 800_000  # a rotated pass works on at most this many pixels
    # Report an EAN-13/UPC-A whose check digit fails (check_digit_ok=False). Off by
    # default: the failed reads seen on real codes were misreads of slanted ones
    # (4006381333931 at 30° read as 0066307333931), and a wrong product is worse
    # than none.
    keep_bad_check_digits: bool = False


def gtin_check_digit_ok(digits: str) -> bool:
    """The GS1 mod-10 check of a GTIN-8/12/13/14 (EAN-8, UPC-A, EAN-13, ITF-14):
    from the right, digits before the check digit weigh 3, 1, 3, …"""
    if len(digits) not in (8, 12, 13, 14) or not digits.isascii() or not digits.isdigit():
        return False
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def _kind(fmt: str, text: str) -> CodeKind:
    if fmt in PRODUCT_FORMATS:
        return CodeKind.PRODUCT
    if _URL.match(text):
        return CodeKind.LINK
    return CodeKind.OTHER


def _normalise(fmt: str, text: str) -> tuple[str, str]:
    # A UPC-A symbol is an EAN-13 whose first digit is 0, bar for bar; zxing-cpp 3
    # reports it as EAN-13 with 13 digits (and as UPC-A with 13 digits when asked for
    # UPC-A alone). Shoppers read the 12 printed digits, so say UPC-A and give those.
    if fmt in ("EAN-13", "UPC-A") and len(text) == 13 and text.startswith("0"):
        return "UPC-A", text[1:]
    return fmt, text


# --- the passes -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pass:
    scale: float  # work image = source resized by this
    angle: float = 0.0  # then rotated counter-clockwise by this many degrees
    linear_only: bool = False
    plain: bool = True  # zxing's own downscale/invert tries (the first pass only)


def _plan(size: tuple[int, int], opts: BarcodeOptions) -> list[_Pass]:
    pixels = size[0] * size[1]
    base = min(1.0, math.sqrt(opts.max_pixels / pixels))
    passes = [_Pass(base)]
    if not opts.try_harder:
        return passes
    small = pixels <= opts.upscale_below_pixels
    if small:
        passes.append(_Pass(2.0, plain=False))
    # A rotated image grows by |cos|+|sin| per side; keep the rotated work image
    # near rotation_pixels (small frames are upscaled first, as interpolating a
    # rotation blurs bars a pixel or two wide).
    for angle in opts.rotations:
        grow = abs(math.cos(math.radians(angle))) + abs(math.sin(math.radians(angle)))
        scale = min(2.0 if small else base, math.sqrt(opts.rotation_pixels / pixels) / grow)
        passes.append(_Pass(scale, angle, linear_only=True, plain=False))
    return passes


def worst_case_pixels(size: tuple[int, int], options: BarcodeOptions | None = None) -> int:
    """The pixels zxing scans, at most, for an image of ``size``: every pass run, each
    counted once (zxing's own downscale tries add about a third to the first)."""
    opts = options or BarcodeOptions()
    total = 0
    for p in _plan(size, opts):
        w, h = size[0] * p.scale, size[1] * p.scale
        if p.angle:
            c, s = abs(math.cos(math.radians(p.angle))), abs(math.sin(math.radians(p.angle)))
            w, h = w * c + h * s, w * s + h * c
        total += round(w * h)
    return total


def _work_image(gray: Image.Image, p: _Pass) -> tuple[Image.Image, tuple[int, int]]:
    """The image zxing sees in pass ``p``, and its size before the rotation."""
    img = gray
    if p.scale != 1.0:
        size = (max(1, round(gray.width * p.scale)), max(1, round(gray.height * p.scale)))
        resample = Image.Resampling.BICUBIC if p.scale > 1 else Image.Resampling.BOX
        img = gray.resize(size, resample)
    scaled = img.size
    if p.angle:
        img = img.rotate(p.angle, Image.Resampling.BICUBIC, expand=True, fillcolor=128)
    return img, scaled


def _to_source(
    points: Iterable[tuple[float, float]],
    p: _Pass,
    scaled: tuple[int, int],
    rotated: tuple[int, int],
) -> list[tuple[float, float]]:
    """Corners found in the work image, back in the source image's pixels."""
    out = []
    cos, sin = math.cos(math.radians(p.angle)), math.sin(math.radians(p.angle))
    for x, y in points:
        if p.angle:
            # PIL turns counter-clockwise about the centre (y points down), then
            # recentres on the expanded canvas; undo both.
            dx, dy = x - rotated[0] / 2, y - rotated[1] / 2
            x = cos * dx - sin * dy + scaled[0] / 2
            y = sin * dx + cos * dy + scaled[1] / 2
        out.append((x / p.scale, y / p.scale))
    return out


def _zxing() -> Any:
    try:
        import zxingcpp
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(INSTALL_HINT) from e
    return zxingcpp


def _read(zx: Any, img: Image.Image, p: _Pass) -> list[Any]:
    return list(
        zx.read_barcodes(
            img,
            formats=zx.BarcodeFormat.AllLinear if p.linear_only else zx.BarcodeFormat.All,
            try_rotate=True,
            try_downscale=p.plain,
            try_invert=p.plain,
            return_errors=True,
        )
    )


_CHECKED_WHEN_BAD = frozenset({"EAN-13", "UPC-A"})


def _accept(
    zx: Any, found: Any, opts: BarcodeOptions
) -> tuple[str, str, CodeKind, bool | None] | None:
    """(format, text, kind, check digit ok) of a zxing result worth reporting."""
    fmt, text = _normalise(str(found.format), str(found.text))
    kind = _kind(fmt, text)
    error = found.error
    if error is not None:
        # Only a failed check digit on a whole EAN-13/UPC-A is worth reporting: twelve
        # digits in two guarded halves rarely come from noise. Short symbologies do:
        # half of a slanted EAN-13 reads as a UPC-E with a bad check digit.
        if not (
            opts.keep_bad_check_digits
            and fmt in _CHECKED_WHEN_BAD
            and error.type == zx.ErrorType.Checksum
        ):
            return None
    elif not found.valid:
        return None
    if fmt == "ITF" and len(text) < 6:  # short ITF is what noise between bars decodes to
        return None
    check = gtin_check_digit_ok(text) if kind is CodeKind.PRODUCT else None
    return fmt, text, kind, check


def _rank(code: Barcode) -> int:
    if code.check_digit_ok is False:
        return 0
    return 1 if code.kind is CodeKind.OTHER else 2


def _inside(point: tuple[float, float], box: Box) -> bool:
    return box.left <= point[0] < box.right and box.top <= point[1] < box.bottom


def _prune(codes: Iterable[Barcode]) -> list[Barcode]:
    """Drop reads that are artefacts of a stronger one: a line scanned across an
    EAN-13 also finds "ITF 38" in its bars, or the same bars with a failed check
    digit. A code goes when its centre lies in the box of a higher-ranked code."""
    codes = list(codes)
    return [
        c
        for c in codes
        if not any(_rank(o) > _rank(c) and _inside(c.box.centre, o.box) for o in codes)
    ]


def decode_barcodes(image: Image.Image, options: BarcodeOptions | None = None) -> list[Barcode]:
    """Every distinct barcode zxing-cpp finds in ``image``, top-to-bottom then
    left-to-right; [] for an image with none, or one that cannot be read (a
    truncated file). Raises ModuleNotFoundError with the install line when
    zxing-cpp is missing."""
    opts = options or BarcodeOptions()
    zx = _zxing()
    try:
        gray = image.convert("L")
    except (OSError, ValueError) as e:  # truncated or corrupt data, an odd mode
        log.warning("barcodes: cannot read the image (%s)", e)
        return []
    size = gray.size
    if size[0] == 0 or size[1] == 0:
        return []
    # The same code twice (two packs side by side) is one line for the model.
    good: dict[tuple[str, str], Barcode] = {}
    doubtful: dict[tuple[str, str], Barcode] = {}  # check digit wrong: never ends the search
    for p in _plan(size, opts):
        work, scaled = _work_image(gray, p)
        for found in _read(zx, work, p):
            accepted = _accept(zx, found, opts)
            if accepted is None:
                continue
            fmt, text, kind, check = accepted
            pos = found.position
            corners = [
                (c.x, c.y) for c in (pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left)
            ]
            box = Box.around(_to_source(corners, p, scaled, work.size), size)
            (doubtful if check is False else good).setdefault(
                (fmt, text), Barcode(fmt, text, kind, box, size, check)
            )
        if good:
            break
    codes = _prune([*good.values(), *doubtful.values()])
    return sorted(codes, key=lambda b: (b.box.top, b.box.left))


# --- what is new, and how to say it -------------------------------------------------


class BarcodeMemory:
    """Which codes are new: a code seen again within ``window_s`` of its last
    sighting is not, so a product held in view through many frames is announced
    once. Pure; the caller passes the time (any monotonic seconds)."""

    def __init__(self, window_s: float = 30.0, max_codes: int = 256) -> None:
        self.window_s = window_s
        self.max_codes = max_codes
        self._last_seen: dict[str, float] = {}

    def fresh(self, barcodes: Sequence[Barcode], now: float) -> list[Barcode]:
        """The codes in ``barcodes`` not seen in the last ``window_s``; every one
        given counts as seen at ``now``."""
        self._last_seen = {k: t for k, t in self._last_seen.items() if now - t < self.window_s}
        new = []
        for b in barcodes:
            key = b.text
            if key not in self._last_seen:
                new.append(b)
            self._last_seen[key] = now
        if len(self._last_seen) > self.max_codes:  # a shelf of codes: keep the latest
            latest = sorted(self._last_seen.items(), key=lambda kv: kv[1])[-self.max_codes :]
            self._last_seen = dict(latest)
        return new

    def __len__(self) -> int:
        return len(self._last_seen)


_LABELS = {CodeKind.PRODUCT: "product code", CodeKind.LINK: "link", CodeKind.OTHER: ""}


def _shown_text(b: Barcode, max_chars: int) -> str:
    # A QR code's text is whatever its maker wrote: one line, bounded, quoted, so it
    # reads as data in the turn and cannot break the line it sits on.
    text = "".join(ch if ch.isprintable() else " " for ch in b.text)
    text = _SPACES.sub(" ", text).strip().replace('"', "'")
    if len(text) > max_chars:
        text = text[: max_chars - 1].rstrip() + "…"
    return text if b.kind is CodeKind.PRODUCT else f'"{text}"'


def describe(barcodes: Sequence[Barcode], *, max_codes: int = 4, max_chars: int = 80) -> str:
    """One line for the model's turn, e.g. "Barcode EAN-13 4006381333931 (product
    code) at the centre of the view."; "" for no codes."""
    parts = []
    for b in barcodes[:max_codes]:
        notes = [n for n in (_LABELS[b.kind],) if n]
        if b.check_digit_ok is False:
            notes.append("check digit wrong, may be misread")
        note = f" ({', '.join(notes)})" if notes else ""
        parts.append(f"Barcode {b.format} {_shown_text(b, max_chars)}{note} {b.where}.")
    if len(barcodes) > max_codes:
        parts.append(f"{len(barcodes) - max_codes} more barcodes.")
    return " ".join(parts)
