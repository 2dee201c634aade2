"""A synthetic first-person clip for ``murmur-bridge synth``, tests and benchmarks.

No camera or recording needed to try the whole loop: a walk down a corridor towards a
door, encoded like a phone's video.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["corridor_frame", "write_synthetic_clip"]


def corridor_frame(t: float, width: int, height: int) -> np.ndarray:
    """A walk down a corridor at ``t`` seconds, as ``height × width × 3`` uint8 RGB:
    floor/ceiling gradients converging on a vanishing point, and a door that drifts
    right and grows as the wearer approaches."""
    ys = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    sway = 0.05 * np.sin(t * 2.2)
    depth = np.abs(ys) + 1e-3
    stripes = (np.sin(6.0 / depth + t * 8.0) > 0).astype(np.float32)
    floor = ys > 0
    shade = np.clip(np.abs(ys) * 1.4, 0, 1)
    r = np.where(floor, 90 + 80 * shade + 20 * stripes, 170 + 60 * shade)
    g = np.where(floor, 70 + 60 * shade + 20 * stripes, 170 + 55 * shade)
    b = np.where(floor, 50 + 40 * shade, 180 + 50 * shade)
    walls = np.abs(xs - sway) > (0.25 + 0.75 * np.abs(ys))
    r = np.where(walls, 200 - 60 * np.abs(xs), r)
    g = np.where(walls, 190 - 60 * np.abs(xs), g)
    b = np.where(walls, 160 - 50 * np.abs(xs), b)
    img = np.stack(np.broadcast_arrays(r, g, b), axis=-1).clip(0, 255).astype(np.uint8)
    # The door: brown, with a dark handle, getting closer.
    grow = min(1.0, 0.15 + 0.08 * t)
    cx = int(width * (0.55 + 0.25 * np.tanh(0.15 * t)))
    dw, dh = int(width * 0.2 * grow) + 4, int(height * 0.6 * grow) + 6
    x0, y0 = max(0, cx - dw // 2), max(0, height // 2 - dh // 3)
    img[y0 : y0 + dh, x0 : x0 + dw] = (120, 70, 30)
    hx, hy = x0 + int(dw * 0.8), y0 + dh // 2
    img[hy : hy + 3 + dh // 30, hx : hx + 3 + dw // 15] = (20, 20, 20)
    return img


def write_synthetic_clip(
    path: str | Path, seconds: float, fps: float, size: tuple[int, int] = (640, 480)
) -> Path:
    """A synthetic first-person clip (a corridor with a door) as H.264 in .mp4,
    or MPEG-4 Part 2 where this PyAV build has no libx264."""
    import av  # heavy; only the clip writer needs it

    p = Path(path)
    width, height = size[0] // 2 * 2, size[1] // 2 * 2
    rate = Fraction(fps).limit_denominator(1001)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(p), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "28"}
        for i in range(max(1, round(seconds * fps))):
            frame = av.VideoFrame.from_ndarray(
                corridor_frame(i / fps, width, height), format="rgb24"
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return p
