"""The Bluetooth side of the Frame/Halo source: one BLE link and the SDK's receivers on it.

``BleLink`` holds a connected ``brilliant_ble.BrilliantBle`` and the ``brilliant_msg``
receivers reading it (``RxPhoto``, ``RxAudio``, ``RxTap``, ``RxClick``), attached to a
``NotificationRouter`` that stands in for ``BrilliantMsg``'s dispatch. ``PcmReader``
turns the microphone's signed PCM into 16 kHz int16, ``checked_jpeg`` lets only whole
JPEGs through.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

import numpy as np

from mobile_bridge.media import encode_jpeg
from mobile_bridge.sources import brilliant_app as app

__all__ = [
    "MIC_RATE_HZ",
    "BleLink",
    "BrilliantStats",
    "LinkLost",
    "NotificationRouter",
    "PcmReader",
    "checked_jpeg",
]

T = TypeVar("T")

MIC_RATE_HZ = 16000  # what audio() sends, whatever the glasses record at
_TAPS = {1: "tap", 2: "double_tap", 3: "triple_tap"}
_CLICKS = {1: "press", 2: "double_press", 3: "long_press"}


@dataclass
class BrilliantStats:
    photos: int = 0  # frames and stills that reached the session
    photos_lost: int = 0  # photos cut by a disconnect, discarded
    photos_broken: int = 0  # complete but not a decodable JPEG, discarded
    photo_timeouts: int = 0
    audio_packets: int = 0
    disconnects: int = 0
    reconnects: int = 0
    unknown_messages: int = 0  # a notification code nothing here reads
    malformed_messages: int = 0  # an empty or short notification
    unknown_gestures: int = 0
    battery_percent: int | None = None


class LinkLost(Exception):
    """The BLE link dropped while waiting on it."""


class NotificationRouter:
    """Stands in for ``BrilliantMsg``'s dispatch: the SDK's receivers attach here, and
    every notification is checked first, so what they cannot use is counted, not
    mistaken (``RxTap`` would count an unknown Halo gesture as a Frame tap)."""

    _QUIET = frozenset({0x01})  # the data channel's ACKs (01 00 00) arrive as code 1

    def __init__(self, stats: BrilliantStats, complain: Callable[[str, str], None]) -> None:
        self._stats = stats
        self._complain = complain
        self._handlers: dict[int, list[tuple[object, Callable[[bytes], None]]]] = {}

    def register_data_response_handler(
        self, subscriber: object, msg_codes: list[int], handler: Callable[[bytes], None]
    ) -> None:
        for c in msg_codes:
            self._handlers.setdefault(c, []).append((subscriber, handler))

    def unregister_data_response_handler(self, subscriber: object) -> None:
        for c in list(self._handlers):
            self._handlers[c] = [(s, h) for s, h in self._handlers[c] if s is not subscriber]

    def handle(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)
        if not data:
            self._stats.malformed_messages += 1
            self._complain("malformed", "an empty notification")
            return
        code = data[0]
        if code in self._QUIET:
            return
        if code == app.BATTERY_MSG:
            if len(data) >= 2:
                self._stats.battery_percent = data[1]
            return
        if code in (app.TAP_MSG, app.CLICK_MSG) and not self._known_gesture(data):
            return
        handlers = self._handlers.get(code)
        if not handlers:
            self._stats.unknown_messages += 1
            self._complain("unknown", f"a message of unknown type 0x{code:02x}")
            return
        for _, handler in list(handlers):
            handler(data)

    def _known_gesture(self, data: bytes) -> bool:
        # Frame's tap is the bare code; Halo adds its kind; a click always has one.
        if data[0] == app.TAP_MSG and len(data) == 1:
            return True
        if len(data) == 2 and 1 <= data[1] <= 3:
            return True
        self._stats.unknown_gestures += 1
        what = "tap" if data[0] == app.TAP_MSG else "button click"
        self._complain("gesture", f"a {what} of a kind this bridge does not know ({data.hex()})")
        return False


class BleLink:
    """One BLE connection, with the SDK receivers attached to it."""

    def __init__(self, ble: Any, router: NotificationRouter, name: str, halo: bool) -> None:
        self.ble = ble
        self.router = router
        self.name = name
        self.halo = halo
        self.lost = asyncio.Event()
        self.photos: asyncio.Queue[bytes] = asyncio.Queue()
        self.audio: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._receivers: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def attach(
        self, msg: ModuleType, tap_window_s: float, gesture: Callable[[str], None]
    ) -> None:
        photo = msg.RxPhoto(upright=False)  # turned upright off the loop, once checked
        sound = msg.RxAudio(streaming=True)
        taps, clicks = msg.RxTap(threshold=tap_window_s), msg.RxClick()
        self._receivers = [photo, sound, taps, clicks]
        self.photos = await photo.attach(self.router)
        self.audio = await sound.attach(self.router)
        tap_counts, click_kinds = await taps.attach(self.router), await clicks.attach(self.router)
        self._tasks = [
            asyncio.create_task(self._gestures(tap_counts, _TAPS, gesture)),
            asyncio.create_task(self._gestures(click_kinds, _CLICKS, gesture)),
        ]

    async def _gestures(
        self, queue: asyncio.Queue[Any], names: dict[int, str], gesture: Callable[[str], None]
    ) -> None:
        while True:
            n = int(await queue.get())
            gesture(names.get(n, f"{n}_taps"))

    def detach(self) -> None:
        for receiver in self._receivers:
            receiver.detach(self.router)  # RxPhoto drops a half-received photo here
        for task in self._tasks:
            task.cancel()

    async def until(self, aw: Awaitable[T], timeout_s: float | None = None) -> T:
        """``aw``'s result, or ``LinkLost`` if the link drops first (``TimeoutError``
        after ``timeout_s``)."""
        got = asyncio.ensure_future(aw)
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            done, _ = await asyncio.wait(
                {got, lost}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (got, lost):
                if not task.done():
                    task.cancel()
        if got in done:
            return got.result()
        if lost in done:
            raise LinkLost
        raise TimeoutError


class PcmReader:
    """The glasses' signed PCM chunks → int16 at 16 kHz (a byte split across two
    chunks is kept for the next)."""

    def __init__(self, rate_hz: int, bit_depth: int) -> None:
        self._width = bit_depth // 8
        self._held = b""
        self._resampler: Any = None
        if rate_hz != MIC_RATE_HZ:
            import soxr

            self._resampler = soxr.ResampleStream(rate_hz, MIC_RATE_HZ, 1, dtype="int16")

    def read(self, chunk: bytes) -> np.ndarray:
        data = self._held + bytes(chunk)
        whole = len(data) // self._width * self._width
        self._held = data[whole:]
        if self._width == 1:
            pcm = np.frombuffer(data[:whole], np.int8).astype(np.int16) << 8
        else:
            pcm = np.frombuffer(data[:whole], "<i2").astype(np.int16)
        if self._resampler is not None:
            pcm = self._resampler.resample_chunk(pcm)
        return pcm


def checked_jpeg(raw: bytes, upright: bool) -> bytes | None:
    """Blocking: ``raw`` if it is a whole JPEG (turned upright on Frame, as the SDK's
    ``RxPhoto(upright=True)`` does), else None."""
    from PIL import Image

    if not (raw.startswith(b"\xff\xd8") and raw.rstrip(b"\x00").endswith(b"\xff\xd9")):
        return None
    try:
        with Image.open(io.BytesIO(raw)) as im:
            im.load()  # decodes every scan: a truncated one raises here
            if not upright:
                return raw
            turned = im.transpose(Image.Transpose.ROTATE_90)
    except (OSError, SyntaxError, ValueError):
        return None
    return encode_jpeg(turned, max(turned.size), 90)
