"""Barcode decoding cost on this machine: a glasses frame (640×480) and a phone still
(2000×1500), each with a code the plain pass finds, a slanted code only the harder
passes find, and no code at all (every pass runs: the worst case).

Prints p50/p95 wall time and the process's CPU time (ms, all threads), which a loaded
machine does not inflate. With ``--ocr``, also the optional OCR backend on a
rendered sign at both sizes. No asserts: the numbers go in the module docstrings.

    python benchmarks/bench_barcodes.py --runs 20
    python benchmarks/bench_barcodes.py --ocr
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import zxingcpp
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from server.vision.barcodes import decode_barcodes, worst_case_pixels
from server.vision.ocr import load_ocr, reading_text

SIZES = ((640, 480), (2000, 1500))
T = TypeVar("T")
EAN13 = "4006381333931"


def _scene(size: tuple[int, int], seed: int = 3) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(70, 190, size=(7, 9, 3), dtype=np.uint8)
    return Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)


def _with_code(size: tuple[int, int], module_px: float, angle: float) -> Image.Image:
    """An EAN-13 with ``module_px`` pixels a module, turned by ``angle`` degrees;
    drawn at 4× and downsampled, as a camera samples it."""
    img = _scene(size)
    symbol = Image.fromarray(np.array(zxingcpp.create_barcode(EAN13, zxingcpp.EAN13).to_image()))
    s = round(module_px * 4)
    big = symbol.convert("RGB").resize(
        (symbol.width * s, symbol.height * s), Image.Resampling.NEAREST
    )
    big = big.convert("RGBA").rotate(angle, Image.Resampling.BICUBIC, expand=True)
    patch = big.resize((big.width // 4, big.height // 4), Image.Resampling.LANCZOS)
    img.paste(patch, (size[0] // 2 - patch.width // 2, size[1] // 2 - patch.height // 2), patch)
    return img.filter(ImageFilter.GaussianBlur(0.6))


def _sign(size: tuple[int, int]) -> Image.Image:
    img = _scene(size)
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.rectangle((w // 5, h // 4, w * 4 // 5, h * 2 // 3), fill=(20, 60, 160))
    font = ImageFont.load_default(size=max(12, h // 12))
    draw.text((w // 4, h // 3), "PLATFORM 4", fill="white", font=font)
    draw.text((w // 4, h // 2), "Exit to Main St", fill="white", font=font)
    return img


def _time(fn: Callable[[], T], runs: int) -> tuple[list[float], list[float], T]:
    walls, cpus = [], []
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        cpus.append((time.process_time() - c0) * 1000)
        walls.append((time.perf_counter() - w0) * 1000)
    return walls, cpus, result


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _row(label: str, walls: list[float], cpus: list[float], note: str) -> None:
    print(
        f"{label:<34} wall p50 {statistics.median(walls):7.1f}  p95 {_p(walls, 0.95):7.1f}"
        f"   cpu p50 {statistics.median(cpus):7.1f}   {note}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--ocr", action="store_true", help="also time the OCR backend")
    args = ap.parse_args()

    print(f"zxing-cpp {version('zxing-cpp')}")
    print("barcodes (ms)")
    for size in SIZES:
        module_px = 2.5 if size[0] < 1000 else 4.0  # a pack at arm's length
        cases = {
            "EAN-13 level": _with_code(size, module_px, 8),
            "EAN-13 at 35°": _with_code(size, module_px, 35),
            "no code (every pass)": _scene(size),
        }
        for name, image in cases.items():
            decode_barcodes(image)  # warm
            walls, cpus, found = _time(partial(decode_barcodes, image), args.runs)
            _row(f"{size[0]}×{size[1]} {name}", walls, cpus, f"found {[b.text for b in found]}")
        print(f"  (at most {worst_case_pixels(size) / 1e6:.1f} MP scanned for {size[0]}×{size[1]})")

    if not args.ocr:
        return
    ocr = load_ocr("rapidocr")
    assert ocr is not None
    flavour = getattr(ocr, "flavour", "rapidocr")
    print(f"ocr (ms): {flavour} {version(flavour.replace('_', '-'))}")
    for size in SIZES:
        sign = _sign(size)
        ocr.read(sign)  # warm: the first read also sets up ONNX Runtime
        walls, cpus, lines = _time(partial(ocr.read, sign), max(3, args.runs // 3))
        text = reading_text(lines).replace("\n", " / ")
        _row(f"{size[0]}×{size[1]} sign", walls, cpus, repr(text))


if __name__ == "__main__":
    main()
