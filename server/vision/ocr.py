"""Optional OCR: printed text in a still (a sign, a label), added to the turn when
the user asked to read something.

One backend today, RapidOCR (PaddleOCR's PP-OCR models on ONNX Runtime, weights
inside the wheel, so it works offline). It is imported only by ``load_ocr``: a
server without it runs, with reading left to the interaction model alone.
``rapidocr-onnxruntime`` (1.4; Python < 3.13) is preferred; ``rapidocr`` 3.x
(PP-OCRv6, needs ``onnxruntime`` beside it) is used when only it is installed.

Measured on the 2-core CI machine (benchmarks/bench_barcodes.py --ocr), one read of a
rendered sign: rapidocr-onnxruntime 1.4.4 took 0.5–0.6 s wall on a quiet machine
(0.8–1.0 s of CPU, both cores); rapidocr 3.10 about 1.6–2 s. A 2000×1500 still is
read at ``max_side`` = 1280 px: ~1.5–2.2 s of CPU instead of ~4.3 s at full size,
and 12 px print still reads. The first read after loading is ~50% slower (ONNX
Runtime warms up). ``read`` blocks: callers run it in an executor, and the whole
read happens inside that thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

from server.errors import ModelLoadError
from server.vision.box import Box

__all__ = [
    "INSTALL_HINT",
    "OCR_BACKENDS",
    "OcrBackend",
    "RapidOcr",
    "TextLine",
    "load_ocr",
    "reading_text",
]

log = logging.getLogger(__name__)

OCR_BACKENDS = ("none", "rapidocr")
INSTALL_HINT = "pip install 'murmur[ocr]' (or: pip install rapidocr-onnxruntime)"


@dataclass(frozen=True, slots=True)
class TextLine:
    text: str
    confidence: float  # 0..1, the recogniser's own score
    box: Box  # in pixels of the image read


class OcrBackend(Protocol):
    def read(self, image: Image.Image) -> list[TextLine]:
        """Every line of text found in ``image``, in no particular order. Blocks."""
        ...


class RapidOcr:
    """RapidOCR behind ``OcrBackend``. Build it with ``RapidOcr.load()``."""

    def __init__(self, engine: Any, *, flavour: str, max_side: int = 1280) -> None:
        self._engine = engine
        self.flavour = flavour  # "rapidocr_onnxruntime" or "rapidocr"
        self.name = "rapidocr"
        self.max_side = max_side

    @classmethod
    def load(cls, *, max_side: int = 1280) -> RapidOcr:
        """The installed RapidOCR; ModelLoadError with the install line if none is."""
        problems = []
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as e:  # not installed, or opencv without its libGL
            problems.append(f"rapidocr_onnxruntime: {e}")
        else:
            return cls(RapidOCR(), flavour="rapidocr_onnxruntime", max_side=max_side)
        try:
            from rapidocr import RapidOCR as RapidOCR3
        except ImportError as e:
            problems.append(f"rapidocr: {e}")
            raise ModelLoadError(
                f"OCR backend 'rapidocr' cannot be imported ({'; '.join(problems)}): "
                f"{INSTALL_HINT}; or set the OCR backend to 'none'",
                component="ocr",
            ) from e
        return cls(RapidOCR3(), flavour="rapidocr", max_side=max_side)

    def read(self, image: Image.Image) -> list[TextLine]:
        # Both flavours take a PIL image and convert RGB to the BGR their models
        # expect; a numpy array would be taken as BGR already.
        try:
            rgb = image.convert("RGB")
        except (OSError, ValueError) as e:  # truncated or corrupt data
            log.warning("ocr: cannot read the image (%s)", e)
            return []
        # The cost follows the pixels (a 2000×1500 still: ~4 s of CPU, at 1280 px
        # ~2 s) and 1280 px still reads 12 px print, so stills are read downscaled.
        scale = min(1.0, self.max_side / max(rgb.size, default=1))
        work = rgb
        if scale < 1.0:
            work = rgb.resize(
                (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))),
                Image.Resampling.LANCZOS,
            )
        out = self._engine(work)
        if self.flavour == "rapidocr_onnxruntime":
            found, _timings = out
            rows = [(box, text, score) for box, text, score in found or ()]
        else:  # rapidocr 3: RapidOCROutput with parallel boxes / txts / scores
            if out.boxes is None or out.txts is None:
                return []
            rows = list(zip(out.boxes, out.txts, out.scores, strict=True))
        return [_line(box, text, score, scale, rgb.size) for box, text, score in rows]


def _line(
    corners: Iterable[Any], text: str, score: float, scale: float, size: tuple[int, int]
) -> TextLine:
    points = [(float(x) / scale, float(y) / scale) for x, y in corners]
    return TextLine(str(text).strip(), float(score), Box.around(points, size))


def load_ocr(name: str, *, max_side: int = 1280) -> OcrBackend | None:
    """The OCR backend a config string names: "none" → None (reading stays with the
    interaction model), "rapidocr" → RapidOCR reading images downscaled to
    ``max_side`` pixels on their long side. Raises ModelLoadError when the named
    backend is not installed, ValueError for an unknown name."""
    key = name.strip().lower()
    if key in ("", "none", "off"):
        return None
    if key == "rapidocr":
        return RapidOcr.load(max_side=max_side)
    raise ValueError(f"unknown OCR backend {name!r}; known: {', '.join(OCR_BACKENDS)}")


# --- from lines to something to read out ------------------------------------------


def _rows(lines: Sequence[TextLine]) -> list[list[TextLine]]:
    """Lines grouped into rows: a line joins the row above when its vertical centre
    lies within half a line height of that row's, so words a detector split on one
    sign line read left to right."""
    rows: list[list[TextLine]] = []
    for line in sorted(lines, key=lambda t: (t.box.centre[1], t.box.left)):
        if rows:
            last = rows[-1]
            height = max(1, min(line.box.height, *(t.box.height for t in last)))
            row_y = sum(t.box.centre[1] for t in last) / len(last)
            if abs(line.box.centre[1] - row_y) <= height / 2:
                last.append(line)
                continue
        rows.append([line])
    return [sorted(r, key=lambda t: t.box.left) for r in rows]


def reading_text(
    lines: Sequence[TextLine], max_chars: int = 400, *, min_confidence: float = 0.6
) -> str:
    """The text to read out: confident lines, top to bottom and left to right, one
    row a line; bounded to ``max_chars`` at a row or word boundary, with "…" where
    something was left out. "" when nothing legible was found."""
    kept = [t for t in lines if t.confidence >= min_confidence and t.text]
    full = "\n".join(" ".join(t.text for t in row) for row in _rows(kept))
    if len(full) <= max_chars:
        return full
    cut = full[: max(max_chars - 1, 0)]
    boundary = max(cut.rfind(" "), cut.rfind("\n"))
    if boundary > 0:  # never end inside a word, unless it is the only word
        cut = cut[:boundary]
    return cut.rstrip() + "…"
