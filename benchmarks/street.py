"""A synthetic first-person street view for the benchmarks that need frames which look
like a camera's (sky, road, a row of boxes, sensor grain): ``street_view(shift)`` slides
the boxes by ``shift`` steps, as walking does, so consecutive frames differ like a
walk's and equal shifts look like a still camera's."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["street_view"]


def street_view(shift: int, rng: np.random.Generator, *, grain: float = 2.0) -> Image.Image:
    """640×480; JPEG at quality 85 is ~20–40 KB, like a real scene (noise would be 4×)."""
    img = Image.new("RGB", (640, 480), (150, 180, 210))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 300, 640, 480), fill=(90, 90, 80))
    for k in range(6):
        x = (k * 130 - shift * 37) % 760 - 60
        d.rectangle((x, 180 + 15 * k, x + 70, 320), fill=(60 + 30 * k, 40, 120 - 15 * k))
    noise = rng.normal(0, grain, (480, 640, 3))
    return Image.fromarray(np.clip(np.asarray(img) + noise, 0, 255).astype(np.uint8))
