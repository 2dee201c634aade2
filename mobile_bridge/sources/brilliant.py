"""Brilliant Labs Frame and Halo over Bluetooth LE, as a glasses source.

Built on Brilliant Labs' Python SDK (``pip install 'murmur[frame]'``: ``brilliant-ble``
for the link, ``brilliant-msg`` for the message formats and device-side Lua), imported
only when a source is opened. ``open_brilliant(options)`` scans (by name, or the first
Frame or Halo found), connects, uploads and starts the bridge's app
(``brilliant_app``), and fails with a ``DeviceError`` before any session starts.

- **Photos** at ``options.fps``, and at full resolution for ``capture_still()``: a
  ``TxCaptureSettings`` request, chunks reassembled by the SDK's ``RxPhoto``, then
  checked (a JPEG that does not decode is dropped, counted, and asked for again) and,
  on Frame, turned upright. One capture at a time: a still waits for a frame in flight.
- **Microphone**: signed PCM (the app asks for ``mic_rate_hz``/``mic_bit_depth``; both
  devices give PCM, so no LC3 decoder is needed) from ``RxAudio``, re-encoded as 20 ms
  Opus packets at 16 kHz with the bridge's ``OpusPacketizer``.
- **Taps and clicks** (``RxTap``: Frame's aggregated taps, Halo's tap kinds; ``RxClick``:
  Halo's button) become ``GestureControl``s from ``controls()``, mapped by
  ``options.gestures``; with ``ask_as_text`` an "ask" is also typed as ``ask_text``.
- **The Halo speaker**: ``speaker_write`` takes 16 kHz PCM for it; ``brilliant_speaker``
  is the playback sink's output on it, which ``murmur-bridge live`` uses for a Halo.
- **Battery**: the SDK's ``battery.lua`` reports the charge every minute (``stats``);
  at ``low_battery_percent`` or below, photos slow to ``low_battery_fps`` (said once),
  and go back up when the glasses are charged 5 points above it. The server's
  ``CaptureHint`` (``set_capture_rate``) caps the rate too; the lower one wins.
- **Reconnects**: a dropped link is retried with ``Backoff`` (exponential, jittered),
  saying so through ``say``; frames and audio wait and resume on the new link, a photo
  cut by the drop is discarded and taken again.

Notifications the SDK receivers cannot use (an unknown code, a tap gesture or click
this bridge does not know, an empty packet) are skipped and counted in ``stats``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from types import ModuleType
from typing import Any, TypeVar

import numpy as np

from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.connection import Backoff
from mobile_bridge.devices import DeviceError
from mobile_bridge.media import OpusPacketizer
from mobile_bridge.sources import brilliant_app as app
from mobile_bridge.sources.base import GlassesSource, JpegFrame, OpusPacket, SourceCapabilities
from mobile_bridge.sources.brilliant_keeper import LinkKeeper
from mobile_bridge.sources.brilliant_link import (
    MIC_RATE_HZ,
    BrilliantStats,
    LinkLost,
    PcmReader,
    checked_jpeg,
)
from mobile_bridge.sources.pace import FramePacer

__all__ = [
    "DEFAULT_GESTURES",
    "INSTALL_HINT",
    "Action",
    "BrilliantOptions",
    "BrilliantSource",
    "BrilliantStats",
    "GestureControl",
    "check_sdk",
    "gestures_with",
    "open_brilliant",
]

T = TypeVar("T")

INSTALL_HINT = "pip install 'murmur[frame]'"
QUALITIES = ("VERY_LOW", "LOW", "MEDIUM", "HIGH", "VERY_HIGH")  # TxCaptureSettings.quality_index
HALO_RESOLUTION = 640  # the only size Halo's camera takes
MIC_FRAME_MS = 20


class Action(StrEnum):
    """What a gesture asks of the session."""

    ASK = "ask"  # Control.ask_now: "what's in front of me?"
    STOP_SPEAKING = "stop_speaking"  # Control.stop_speaking
    NEXT_MODE = "next_mode"  # Control.set_mode, the next mode in the bridge's cycle
    PAUSE = "pause"  # Control.pause_watching, toggled
    NONE = "none"


# Frame reports taps (aggregated by count); Halo reports tap kinds and button clicks.
DEFAULT_GESTURES: dict[str, Action] = {
    "tap": Action.ASK,
    "double_tap": Action.STOP_SPEAKING,
    "triple_tap": Action.NEXT_MODE,  # Frame has no long press: three taps change mode
    "press": Action.ASK,
    "double_press": Action.STOP_SPEAKING,
    "long_press": Action.NEXT_MODE,
}


def gestures_with(overrides: dict[str, str]) -> dict[str, Action]:
    """The default gestures with ``--gesture NAME=ACTION`` overrides; raises
    ``DeviceError`` naming the gestures and actions there are."""
    gestures = dict(DEFAULT_GESTURES)
    for name, action in overrides.items():
        if name not in DEFAULT_GESTURES:
            known = ", ".join(DEFAULT_GESTURES)
            raise DeviceError(f"unknown gesture {name!r}; the glasses report {known}", "frame")
        try:
            gestures[name] = Action(action)
        except ValueError:
            known = ", ".join(a.value for a in Action)
            problem = f"unknown action {action!r} for {name}; one of {known}"
            raise DeviceError(problem, "frame") from None
    return gestures


@dataclass(frozen=True, slots=True)
class GestureControl:
    gesture: str  # a key of DEFAULT_GESTURES
    action: Action
    time_ms: int  # unix ms on the bridge's clock, when it arrived


@dataclass
class BrilliantOptions:
    name: str | None = None  # the exact BLE name ("Frame 4F", "Halo 08"); None: the first found
    fps: float = 0.5  # photos a second; BLE carries ~20-50 KB/s, a photo is 10-80 KB
    low_battery_percent: int = 20  # at or below this charge, photos slow to ...
    low_battery_fps: float = 0.2  # ... this rate (0: never slow down)
    resolution: int = 512  # Frame: 256-720, even (Halo always 640)
    quality: str = "MEDIUM"  # one of QUALITIES
    still_resolution: int = 720
    still_quality: str = "VERY_HIGH"
    microphone: bool = True
    mic_rate_hz: int = 16000  # what the glasses record at: 8000 or 16000
    mic_bit_depth: int = 16  # 16, or 8 to halve the microphone's share of the link
    speaker_volume: int = 80  # Halo's speaker, 1-100; 0: leave it closed
    gestures: dict[str, Action] = field(default_factory=lambda: dict(DEFAULT_GESTURES))
    tap_window_s: float = 0.3  # Frame: taps this close together are one gesture
    ask_as_text: bool = False  # an "ask" gesture is also typed input (texts())
    ask_text: str = "What's in front of me?"
    scan_timeout_s: float = 10.0
    start_timeout_s: float = 10.0  # for the uploaded app to say it runs
    photo_timeout_s: float = 15.0
    photo_tries: int = 3  # per frame or still, across reconnects
    backoff: Backoff = field(default_factory=lambda: Backoff(1.0, 2.0, 20.0, 0.5))
    max_reconnects: int = 0  # tries in a row before giving up; 0: keep trying


def _import_sdk() -> tuple[ModuleType, ModuleType]:
    try:
        import brilliant_ble
        import brilliant_msg
    except ImportError as e:
        raise DeviceError(
            f"Frame and Halo need Brilliant Labs' SDK: {INSTALL_HINT} ({e})", "frame"
        ) from e
    return brilliant_ble, brilliant_msg


def check_sdk() -> None:
    """Raises ``DeviceError`` with the install hint when the SDK is missing (a command
    line can refuse ``--source frame`` at once, before any retrying)."""
    _import_sdk()


class BrilliantSource(GlassesSource):
    """A Frame or a Halo over BLE. Build it with ``await open_brilliant(options)``."""

    def __init__(
        self,
        options: BrilliantOptions,
        *,
        clock: Clock | None = None,
        say: Callable[[str], None] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        _check_options(options)
        self.options = options
        self.stats = BrilliantStats()
        self._ble, self._msg = sdk = _import_sdk()
        self._clock = clock or SystemClock()
        self._say = say or (lambda line: None)
        self._complaints: dict[str, int] = {}
        self._pace = FramePacer(options.fps, self._clock)
        self._saving = False  # photos slowed for the battery
        self._camera = asyncio.Lock()
        self._controls: asyncio.Queue[GestureControl] = asyncio.Queue(maxsize=32)
        self._asks: asyncio.Queue[str] = asyncio.Queue(maxsize=8)
        self._listening: asyncio.Task[None] | None = None
        self._keeper = LinkKeeper(
            options,
            sdk,
            self.stats,
            self._clock,
            self._say,
            complain=self._complain,
            gesture=self._gesture,
            rand=rand,
        )

    async def connect(self) -> None:
        """The first connection; raises ``DeviceError`` saying why there is none."""
        await self._keeper.connect()

    @property
    def name(self) -> str:
        return self._keeper.name

    @property
    def halo(self) -> bool:
        return self._keeper.halo

    @property
    def connected(self) -> bool:
        return self._keeper.connected

    def status(self) -> str:
        """One line for the bridge's status line."""
        s = self.stats
        state = "connected" if self.connected else "reconnecting"
        batt = f", battery {s.battery_percent}%" if s.battery_percent is not None else ""
        dropped = s.photos_lost + s.photos_broken + s.photo_timeouts
        return (
            f"{self.name or 'glasses'} {state}: {s.photos} photos ({dropped} retaken), "
            f"{s.reconnects} reconnects{batt}"
        )

    def _complain(self, kind: str, what: str) -> None:
        n = self._complaints[kind] = self._complaints.get(kind, 0) + 1
        if n & (n - 1) == 0:  # the 1st, 2nd, 4th, 8th...: heard, never a flood
            self._say(f"(glasses: skipped {what}; {n} so far)")

    # ------------------------------------------------------------------ the media

    @property
    def capabilities(self) -> SourceCapabilities:
        # Halo's own speaker, when opened. Whether the server sends speech at all is the
        # session's sink's to say (a player on the bridge, or none: captions only).
        return SourceCapabilities(
            camera=True,
            microphone=self.options.microphone,
            speaker=self.halo and self.options.speaker_volume > 0,
            haptics=False,  # neither has a vibration motor
            display=True,
            still_capture=True,
            max_fps=self.options.fps,
            mic_rate_hz=MIC_RATE_HZ,
            mic_frame_ms=MIC_FRAME_MS,
        )

    def set_capture_rate(self, fps: float) -> None:
        self._pace.cap("server", fps)

    @property
    def capture_fps(self) -> float:
        return self._pace.fps

    async def frames(self) -> AsyncIterator[JpegFrame]:
        res, quality = self.options.resolution, self.options.quality
        while True:
            self._check_battery()
            await self._pace.wait()
            frame = await self._photo(res, quality)
            if frame is not None:
                yield frame
            self._pace.done()

    def _check_battery(self) -> None:
        """Slow down on a low battery, and back up once charged; each change said once."""
        percent, low = self.stats.battery_percent, self.options.low_battery_percent
        if percent is None or self.options.low_battery_fps <= 0:
            return
        if not self._saving and percent <= low:
            self._saving = True
            self._pace.cap("battery", self.options.low_battery_fps)
            every = 1 / self._pace.fps
            self._say(f"(glasses battery at {percent}%: a photo every {every:g} s to save it)")
        elif self._saving and percent > low + 5:
            self._saving = False
            self._pace.cap("battery", None)
            self._say(f"(glasses battery at {percent}%: photos at {self._pace.fps:g} fps again)")

    async def capture_still(self) -> JpegFrame | None:
        return await self._photo(self.options.still_resolution, self.options.still_quality)

    async def _photo(self, resolution: int, quality: str) -> JpegFrame | None:
        """One checked JPEG, taken again when a drop or a bad photo spoils it; None
        after ``photo_tries``."""
        async with self._camera:  # the glasses take one photo at a time
            for _ in range(self.options.photo_tries):
                link = await self._keeper.current()
                res = HALO_RESOLUTION if link.halo else resolution
                settings = self._msg.TxCaptureSettings(
                    resolution=res, quality_index=QUALITIES.index(quality)
                )
                _drain(link.photos)  # a photo that came after its request timed out
                taken_ms = int(self._clock.time() * 1000)
                try:
                    await link.ble.send_message(app.CAPTURE_MSG, settings.pack())
                    raw = await link.until(link.photos.get(), self.options.photo_timeout_s)
                except (LinkLost, self._ble.NotConnectedError):
                    self.stats.photos_lost += 1
                    continue
                except TimeoutError:
                    self.stats.photo_timeouts += 1
                    self._complain("timeout", "a photo that did not arrive in time")
                    continue
                except Exception as e:  # the SDK's "device didn't respond" is a bare Exception
                    self.stats.photo_timeouts += 1
                    self._complain("timeout", f"a photo request the glasses did not take ({e})")
                    continue
                jpeg = await asyncio.to_thread(checked_jpeg, raw, not link.halo)
                if jpeg is None:
                    self.stats.photos_broken += 1
                    self._complain("photo", "a photo that is not a whole JPEG")
                    continue
                self.stats.photos += 1
                return JpegFrame(jpeg, taken_ms)
        return None

    def start(self) -> None:
        if self.options.microphone:
            self._listening = asyncio.create_task(self._keeper.listen())

    async def audio(self) -> AsyncIterator[OpusPacket]:
        if not self.options.microphone:
            return
        packetizer = OpusPacketizer(MIC_RATE_HZ, MIC_FRAME_MS)
        n = packetizer.frame_samples
        while True:
            link = await self._keeper.current()
            pcm = PcmReader(self.options.mic_rate_hz, self.options.mic_bit_depth)
            held = np.zeros(0, np.int16)
            anchor_ms: int | None = None  # unix ms of the first sample not yet sent
            try:
                while True:
                    chunk = await link.until(link.audio.get())
                    if chunk is None:  # the glasses ended the stream (a reset)
                        raise LinkLost
                    samples = pcm.read(chunk)
                    if anchor_ms is None:
                        anchor_ms = round((self._clock.time() - samples.size / MIC_RATE_HZ) * 1000)
                    held = np.concatenate([held, samples])
                    whole = held.size // n * n
                    for i in range(0, whole, n):
                        packet = packetizer.encode_frame(held[i : i + n])
                        self.stats.audio_packets += 1
                        yield OpusPacket(packet, anchor_ms)
                        anchor_ms += MIC_FRAME_MS
                    held = held[whole:]
            except LinkLost:
                continue  # the new link's stream starts a new timeline

    async def controls(self) -> AsyncIterator[GestureControl]:
        """Taps and clicks, mapped to what they ask (``options.gestures``)."""
        while True:
            yield await self._controls.get()

    async def texts(self) -> AsyncIterator[str]:
        if not self.options.ask_as_text:
            return
        while True:
            yield await self._asks.get()

    def _gesture(self, gesture: str) -> None:
        action = self.options.gestures.get(gesture)
        if action is None:
            self.stats.unknown_gestures += 1
            self._complain("gesture", f"a gesture with no action ({gesture})")
            return
        if action is Action.NONE:
            return
        _offer(self._controls, GestureControl(gesture, action, int(self._clock.time() * 1000)))
        if action is Action.ASK and self.options.ask_as_text:
            _offer(self._asks, self.options.ask_text)

    async def speaker_write(self, pcm16: bytes) -> bool:
        """16 kHz mono 16-bit PCM to the Halo's speaker; False when there is no link
        (the audio is dropped: speech must not pile up while the glasses are away)."""
        link = self._keeper.link
        if link is None or not link.halo:
            return False
        try:
            size = link.ble.max_data_payload() // 2 * 2  # whole samples per write
            for i in range(0, len(pcm16), size):
                await link.ble.send_audio(pcm16[i : i + size])
        except Exception:  # NotConnectedError, or Bleak's own when a write fails mid-drop
            return False
        return True

    async def aclose(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
        await self._keeper.aclose()


async def open_brilliant(
    options: BrilliantOptions,
    *,
    clock: Clock | None = None,
    say: Callable[[str], None] | None = None,
) -> BrilliantSource:
    """A connected Frame or Halo; raises ``DeviceError`` (the SDK missing, no device,
    bad options) before any session starts."""
    source = BrilliantSource(options, clock=clock, say=say)
    await source.connect()
    return source


def _drain(queue: asyncio.Queue[Any]) -> None:
    while not queue.empty():
        queue.get_nowait()


def _offer(queue: asyncio.Queue[Any], item: Any) -> None:
    """Queue without waiting; when nobody reads, the oldest goes."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)


def _check_options(o: BrilliantOptions) -> None:
    problems = []
    if o.fps <= 0:
        problems.append(f"fps must be positive, got {o.fps}")
    if o.low_battery_fps < 0 or not 0 <= o.low_battery_percent <= 100:
        problems.append("low battery: a rate of 0 or more, at a charge of 0-100 %")
    for res in (o.resolution, o.still_resolution):
        if not (256 <= res <= 720 and res % 2 == 0):
            problems.append(f"a Frame photo is 256-720 pixels and even, not {res}")
    for q in (o.quality, o.still_quality):
        if q not in QUALITIES:
            problems.append(f"quality {q!r} is not one of {', '.join(QUALITIES)}")
    if o.mic_rate_hz not in (8000, 16000) or o.mic_bit_depth not in (8, 16):
        problems.append("the microphone records at 8000 or 16000 Hz, 8 or 16 bits")
    if not 0 <= o.speaker_volume <= 100:
        problems.append(f"speaker volume is 0-100, not {o.speaker_volume}")
    unknown = set(o.gestures) - set(DEFAULT_GESTURES)
    if unknown:
        problems.append(
            f"unknown gestures {sorted(unknown)}; the glasses report {', '.join(DEFAULT_GESTURES)}"
        )
    if problems:
        raise DeviceError("; ".join(problems), o.name or "frame")
