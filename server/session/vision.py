"""What the server reads in pictures by itself, off the loop: barcodes in frames and
stills (in a mode with ``barcodes``), and a still's printed text (with OCR on).

The results go to the engine's ``Reading`` (engine/reading.py), which decides what
enters the model's turn and what goes to agents.

- Frames are scanned latest-only, like the frame slot: while one is being scanned,
  newer ones replace each other and only the newest is scanned next, so a slow scan
  (a frame with no code costs the most: every pass runs) never queues.
- A still (``VideoFrame.high_res``) is never dropped for a frame. It is decoded
  within the still's budget (images.py: the frames' path, 4× their pixels), read
  (barcodes and OCR, each in its own pool, at once) in a task of its own, and
  handed to the engine with what was found, so the tick that shows it has it all.
  The reader task only starts that task: a second of OCR does not hold up the
  audio behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from PIL import Image

from server.engine.reading import Reading, Still
from server.errors import Recoverable
from server.events import FrameIn
from server.runtime.base import Frame
from server.session.images import STILL, decode_image
from server.session.notices import Notices
from server.tasks import Spawn
from server.vision.barcodes import Barcode, decode_barcodes
from server.vision.ocr import reading_text

if TYPE_CHECKING:
    from server.session.services import SessionServices

__all__ = ["FrameVision"]

log = logging.getLogger(__name__)


class FrameVision:
    def __init__(
        self,
        services: SessionServices,
        reading: Reading,
        spawn: Spawn,
        notices: Notices,
        *,
        wants_barcodes: Callable[[], bool],
    ) -> None:
        self._services = services
        self._reading = reading
        self._spawn = spawn
        self._notices = notices
        self._wants_barcodes = wants_barcodes  # the mode in force says (it may change)
        self._next: Image.Image | None = None  # the newest frame waiting for a scan
        self._scanning: asyncio.Task[None] | None = None
        self.stats = {"stills": 0, "scans": 0, "codes": 0}

    def frame(self, image: Image.Image) -> None:
        """A frame the slot took: scanned for barcodes when the mode wants them."""
        if not self._wants_barcodes():
            return
        self._next = image
        if self._scanning is None or self._scanning.done():
            self._scanning = self._start(self._scan_frames(), "barcodes")

    def still(self, event: FrameIn) -> None:
        """A full-resolution still from the bridge: read, then given to the engine."""
        self._reading.answered()
        self.stats["stills"] += 1
        self._start(self._read_still(event), "still")

    def _start(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None] | None:
        try:
            return self._spawn(coro, name)
        except RuntimeError:  # the session is ending: nobody to tell
            coro.close()
            return None

    async def _scan_frames(self) -> None:
        loop = asyncio.get_running_loop()
        while (image := self._next) is not None:
            self._next = None
            try:
                codes = await loop.run_in_executor(
                    self._services.executors.media, decode_barcodes, image
                )
            except Exception:  # a decoder bug must not end the session
                log.exception("barcode scan failed")
                return
            self.stats["scans"] += 1
            self.stats["codes"] += len(codes)
            self._reading.add_barcodes(codes)

    async def _read_still(self, event: FrameIn) -> None:
        loop = asyncio.get_running_loop()
        pools = self._services.executors
        t0 = time.perf_counter()
        try:
            decoded = await loop.run_in_executor(pools.media, decode_image, event.data, STILL)
        except Recoverable as e:  # a corrupt or oversized still: said, the question goes on
            await self._notices.error(e)
            return
        decode_ms = (time.perf_counter() - t0) * 1000
        image = decoded.image
        frame = Frame(image, event.seq, event.capture_time_ms, self._services.clock(), decode_ms)
        codes, (text, ocr_ms) = await asyncio.gather(self._codes(image), self._text(image))
        self._reading.add_barcodes(codes)
        self._reading.add_still(Still(frame, decoded.jpeg, text, ocr_ms))
        log.debug(
            "still %dx%d: decode %.0f ms, %d codes, ocr %.0f ms (%d chars)",
            *image.size,
            decode_ms,
            len(codes),
            ocr_ms,
            len(text),
        )

    async def _codes(self, image: Image.Image) -> list[Barcode]:
        if not self._wants_barcodes():
            return []
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._services.executors.media, decode_barcodes, image
            )
        except Exception:
            log.exception("barcode scan of a still failed")
            return []

    async def _text(self, image: Image.Image) -> tuple[str, float]:
        """The still's text and the milliseconds it took; ("", 0) without OCR."""
        ocr = self._services.ocr
        if ocr is None:
            return "", 0.0
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        try:
            lines = await loop.run_in_executor(self._services.executors.ocr, ocr.read, image)
        except Exception:  # the still still goes to the model, without its text
            log.exception("OCR of a still failed")
            return "", (time.perf_counter() - t0) * 1000
        return reading_text(lines), (time.perf_counter() - t0) * 1000
