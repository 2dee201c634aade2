"""The latest-only frame slot.

Video never queues: the model always takes the newest frame, and a frame that is
overtaken before a tick uses it is simply replaced. Decoding happens off the event
loop (``decode_jpeg`` runs in a small media executor), and the capture time travels
with the image so the trace can report how old a frame was when it was decided on.
"""

from __future__ import annotations

import asyncio
import io
import math
import time

from PIL import Image, UnidentifiedImageError

from server.codes import Code
from server.errors import Recoverable
from server.runtime.base import Frame
from server.runtime.limits import MAX_PIXELS

__all__ = ["MAX_PIXELS", "FrameSlot", "decode_jpeg"]

# Frames are capped at MAX_PIXELS (server/runtime/limits.py): more costs vision
# tokens without helping a 1 fps glance. The model's processor enforces the cap.
# A still the server asked for (``high_res``) never enters the slot: it is decoded at
# STILL_MAX_PIXELS and held apart until its tick (session/vision.py, engine/reading.py).


def decode_jpeg(data: bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode and downscale a JPEG (or any still Pillow reads). Raises ``Recoverable``."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", _draft_size(im.size, max_pixels))  # cheap JPEG DCT scaling
            img = im.convert("RGB")
            img.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise Recoverable(
            Code.FRAME_CORRUPT,
            f"a video frame could not be decoded as an image ({e}); it was dropped and "
            "the session goes on. Check the bridge's JPEG encoder.",
            component="video",
        ) from e
    w, h = img.size
    # The model's processor fits frames to its pixel budget anyway (in the model
    # thread); here only a frame far over it is shrunk, to bound memory. A resize
    # costs as much as the decode itself, so a 640×480 frame is left as it is.
    if w * h > 4 * max_pixels:
        scale = math.sqrt(max_pixels / (w * h))
        img = img.resize(
            (max(1, int(w * scale)), max(1, int(h * scale))), Image.Resampling.BILINEAR
        )
    return img


def _draft_size(size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    w, h = size
    if w * h <= max_pixels:
        return size
    scale = math.sqrt(max_pixels / (w * h))
    return (max(1, int(w * scale)), max(1, int(h * scale)))


class FrameSlot:
    """Holds only the newest frame; a tick asks whether it is fresh."""

    def __init__(self, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self._clock = clock
        self._frame: Frame | None = None
        self._fresh = False
        self._event = asyncio.Event()
        self.replaced = 0  # frames overtaken before any tick used them

    @property
    def latest(self) -> Frame | None:
        return self._frame

    @property
    def fresh(self) -> bool:
        return self._fresh

    def fresh_since(self, since: float) -> bool:
        """A fresh frame is held, received at ``since`` or later."""
        return self._fresh and self._frame is not None and self._frame.received_at >= since

    def put(self, frame: Frame) -> bool:
        """Offer a frame; an older one (by seq) than the held one is ignored."""
        if self._frame is not None and frame.seq <= self._frame.seq and frame.seq != 0:
            return False
        if self._fresh:
            self.replaced += 1
        self._frame = frame
        self._fresh = True
        self._event.set()
        return True

    def take(self) -> tuple[Frame | None, bool]:
        """The newest frame and whether it arrived since the last take."""
        fresh = self._fresh
        self._fresh = False
        self._event.clear()
        return self._frame, fresh

    async def wait_fresh(self, within_s: float, *, since: float | None = None) -> bool:
        """Until a fresh frame is held (one received at ``since`` or later, when given),
        for at most ``within_s``; whether one is."""

        def ready() -> bool:
            return self._fresh if since is None else self.fresh_since(since)

        if ready():
            return True
        if within_s <= 0:
            return False
        try:
            async with asyncio.timeout(within_s):
                while not ready():
                    self._event.clear()  # (fresh but too old: wait for the next put)
                    await self._event.wait()
        except TimeoutError:
            return False
        return True
