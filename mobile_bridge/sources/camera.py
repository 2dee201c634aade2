"""A camera on the machine running the bridge (a USB/UVC webcam, glasses that appear as
one, a laptop camera), and optionally its microphone, as a glasses source.

The camera is opened through FFmpeg (PyAV) by a spec:

- ``/dev/video0`` or ``0``: a V4L2 device on Linux (``0`` is the first camera on macOS,
  through AVFoundation);
- ``FORMAT:INPUT``: any FFmpeg capture format, e.g. ``avfoundation:FaceTime HD Camera``
  (macOS), ``dshow:video=Integrated Camera`` (Windows), ``x11grab::0.0`` (a screen), or
  ``lavfi:testsrc2=size=640x480:rate=10`` (a synthetic camera, what the tests use);
- anything else FFmpeg opens: an ``rtsp://`` camera, or a file (read at its own frame
  rate, as if live).

A thread decodes continuously and keeps only the newest frame; ``frames()`` takes one
every ``1/fps`` seconds (less often while the server's ``CaptureHint`` asks for less:
``set_capture_rate``), scaled to ``max_side`` and JPEG-encoded off the loop, stamped
with the wall clock at which it was decoded. ``capture_still()`` is the newest frame at
the camera's full resolution.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.devices import DeviceError, platform_camera_format
from mobile_bridge.media import encode_jpeg, scaled_size
from mobile_bridge.sources.base import GlassesSource, JpegFrame, OpusPacket, SourceCapabilities
from mobile_bridge.sources.capture import CaptureBuffer
from mobile_bridge.sources.pace import FramePacer

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

    from mobile_bridge.sources.microphone import Microphone

__all__ = ["CameraOptions", "CameraSource", "CameraSpec", "parse_camera_spec"]

# Formats that deliver frames as the device makes them; any other input (lavfi, a file)
# is read at its own frame rate, as ffmpeg's -re does, or it would be decoded flat out.
LIVE_FORMATS = frozenset(
    {
        "v4l2",
        "video4linux2",
        "avfoundation",
        "dshow",
        "vfwcap",
        "gdigrab",
        "x11grab",
        "kmsgrab",
        "fbdev",
        "android_camera",
        "decklink",
    }
)
_HINT = "`murmur-bridge devices` lists the cameras this machine has"
STOP_WAIT_S = 2.0


@dataclass(frozen=True, slots=True)
class CameraSpec:
    """Where a camera spec points: what ``av.open`` gets."""

    spec: str  # as given, for messages
    url: str
    format: str | None  # None: FFmpeg guesses (a file, a URL)
    live: bool  # the input paces itself; otherwise it is read at its frame rate


@dataclass
class CameraOptions:
    device: str = "0"  # a spec (see the module's doc)
    fps: float = 1.0  # frames a second sent to the server
    max_side: int = 640  # frames are scaled so their longer side fits; stills are not
    jpeg_quality: int = 80
    still_quality: int = 90
    # FFmpeg input options, e.g. {"video_size": "1280x720", "framerate": "30",
    # "input_format": "mjpeg"} for V4L2; AVFoundation often insists on "framerate".
    input_options: dict[str, str] = field(default_factory=dict)
    seconds: float | None = None  # stop after this long from start(); None: until closed
    open_timeout_s: float = 10.0


def parse_camera_spec(spec: str, platform: str | None = None) -> CameraSpec:
    """A camera spec as a URL and FFmpeg format; ``DeviceError`` names a bad one."""
    s = spec.strip()
    fmt = platform_camera_format(platform or sys.platform)
    if not s:
        raise DeviceError(f"no camera given; {_HINT}", spec)
    if s.isdigit():
        if fmt == "v4l2":
            return CameraSpec(spec, f"/dev/video{s}", "v4l2", live=True)
        if fmt == "avfoundation":
            return CameraSpec(spec, s, fmt, live=True)
        raise DeviceError(
            f"DirectShow opens cameras by name, not number: pass 'dshow:video=NAME' ({_HINT})",
            spec,
        )
    if s.startswith("/dev/video"):
        return CameraSpec(spec, s, "v4l2", live=True)
    prefix, sep, rest = s.partition(":")
    # "C:\\clip.mp4" is a drive letter and "rtsp://…" a URL, neither a format prefix.
    if sep and len(prefix) > 1 and not rest.startswith("//"):
        if prefix not in _input_format_names():
            raise DeviceError(
                f"cannot open the camera {spec!r}: this FFmpeg build has no capture format "
                f"{prefix!r}. Use /dev/videoN, FORMAT:INPUT with a format FFmpeg has "
                f"(lavfi, v4l2, avfoundation, dshow), or a file or URL; {_HINT}",
                spec,
            )
        return CameraSpec(spec, rest, prefix, live=prefix in LIVE_FORMATS)
    return CameraSpec(spec, s, None, live="://" in s)


class CameraSource(GlassesSource):
    """Frames from a camera at ``options.fps``, and audio from ``microphone`` if given.

    Build it with ``await CameraSource.open(options)``, which opens the device (and
    fails with a ``DeviceError`` naming it) before anything connects. Frames and
    audio run until ``options.seconds`` after ``start()``, or until the device stops
    (``frames()`` then raises a ``DeviceError`` saying so).
    """

    def __init__(
        self,
        options: CameraOptions,
        capture: _Capture,
        microphone: Microphone | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.options = options
        self._capture = capture
        self._microphone = microphone
        self._clock = clock or SystemClock()
        self._pace = FramePacer(options.fps, self._clock)
        self._t0: float | None = None

    @classmethod
    async def open(
        cls,
        options: CameraOptions,
        microphone: Microphone | None = None,
        clock: Clock | None = None,
    ) -> CameraSource:
        if options.fps <= 0:
            raise ValueError(f"fps must be positive, got {options.fps}")
        spec = parse_camera_spec(options.device)
        clock = clock or SystemClock()
        # Opening a device can block for seconds (V4L2 negotiation, AVFoundation's
        # permission prompt): off the loop, like every read after it.
        container = await asyncio.to_thread(_open_container, spec, options)
        capture = _Capture(spec, container, CaptureBuffer(1), clock)
        capture.start()
        return cls(options, capture, microphone, clock)

    @property
    def capabilities(self) -> SourceCapabilities:
        mic = self._microphone
        return SourceCapabilities(
            camera=True,
            microphone=mic is not None,
            speaker=False,  # none of its own: a player on the bridge is (the sink says)
            still_capture=True,  # the newest frame at the camera's full resolution
            max_fps=self._capture.rate,
            mic_rate_hz=mic.rate_hz if mic is not None else 16000,
            mic_frame_ms=mic.frame_ms if mic is not None else 20,
        )

    @property
    def frames_captured(self) -> int:
        """Frames the camera delivered so far (most are never sent: only the newest is)."""
        return self._capture.buffer.put_count

    def describe(self) -> str:
        c = self._capture
        rate = f" at {c.rate:g} fps" if c.rate else ""
        return f"{c.spec.spec}: {c.width}x{c.height}{rate} ({c.format_name})"

    def start(self) -> None:
        self._t0 = self._clock.monotonic()
        if self._microphone is not None:
            self._microphone.start()

    def elapsed(self) -> float | None:
        """Seconds since ``start``; None before (the console's timeline)."""
        return None if self._t0 is None else self._clock.monotonic() - self._t0

    def set_capture_rate(self, fps: float) -> None:
        self._pace.cap("server", fps)

    @property
    def capture_fps(self) -> float:
        return self._pace.fps

    async def frames(self) -> AsyncIterator[JpegFrame]:
        while True:
            await self._pace.wait()
            if self._over():
                return
            # The buffer holds one frame: what get() returns is the newest, and never
            # one sent before (a camera that falls behind sends fewer, not stale, frames).
            frame, capture_ms = await self._capture.buffer.get()
            jpeg = await asyncio.to_thread(
                _jpeg, frame, self.options.max_side, self.options.jpeg_quality
            )
            if self._over():
                return
            yield JpegFrame(jpeg, capture_ms)
            self._pace.done()

    async def audio(self) -> AsyncIterator[OpusPacket]:
        if self._microphone is None:
            return
        while not self._over():
            packet = await self._microphone.buffer.get()
            if self._over():
                return
            yield packet

    async def capture_still(self) -> JpegFrame | None:
        latest = self._capture.buffer.latest
        if latest is None:
            if (error := self._capture.buffer.failed) is not None:
                raise error
            return None
        frame, capture_ms = latest
        jpeg = await asyncio.to_thread(_jpeg, frame, None, self.options.still_quality)
        return JpegFrame(jpeg, capture_ms)

    async def aclose(self) -> None:
        if self._microphone is not None:
            await asyncio.to_thread(self._microphone.close)
        await asyncio.to_thread(self._capture.stop, STOP_WAIT_S)

    def _over(self) -> bool:
        if self.options.seconds is None or self._t0 is None:
            return False
        return self._clock.monotonic() - self._t0 >= self.options.seconds


class _Capture:
    """The decoding thread: every frame into a one-slot buffer, newest wins."""

    def __init__(
        self,
        spec: CameraSpec,
        container: InputContainer,
        buffer: CaptureBuffer[tuple[VideoFrame, int]],
        clock: Clock,
    ) -> None:
        self.spec = spec
        self.buffer = buffer
        self._container = container
        self._stream: VideoStream = container.streams.video[0]
        self._clock = clock
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.rate = float(rate) if rate else 0.0
        self.width = self._stream.codec_context.width
        self.height = self._stream.codec_context.height
        self.format_name = container.format.name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera-capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait_s: float) -> None:
        """Blocking. A device read cannot be interrupted: the thread ends at its next
        frame (it is a daemon, so a camera that hangs cannot keep the bridge alive)."""
        self._stop.set()
        self._thread.join(wait_s)

    def _run(self) -> None:
        import av

        name = self.spec.spec
        first: tuple[float, float] | None = None  # (media time, monotonic) of frame one
        try:
            for frame in self._container.decode(self._stream):
                if self._stop.is_set():
                    return
                if not self.spec.live and frame.time is not None:
                    if first is None:
                        first = (frame.time, time.monotonic())
                    due = first[1] + frame.time - first[0]
                    if self._stop.wait(max(0.0, due - time.monotonic())):
                        return
                self.buffer.put((frame, int(self._clock.time() * 1000)))
            if not self._stop.is_set():
                self.buffer.fail(
                    DeviceError(
                        f"the camera {name!r} ended its stream (no more frames); "
                        f"if it was unplugged, plug it back in and start again ({_HINT})",
                        name,
                    )
                )
        except (av.FFmpegError, OSError) as e:
            if not self._stop.is_set():
                self.buffer.fail(
                    DeviceError(
                        f"the camera {name!r} stopped delivering frames ({e}); is it still "
                        f"plugged in? ({_HINT})",
                        name,
                    )
                )
        except Exception as e:  # anything else still ends frames() with a message
            self.buffer.fail(DeviceError(f"the camera {name!r} failed: {e!r}", name))
        finally:
            self._container.close()


def _input_format_names() -> set[str]:
    import av

    # Some formats carry several names in one ("video4linux2,v4l2").
    return {name for entry in av.formats_available for name in entry.split(",")}


def _open_container(spec: CameraSpec, options: CameraOptions) -> InputContainer:
    import av

    try:
        container: Any = av.open(
            spec.url,
            format=spec.format,
            options=dict(options.input_options),
            timeout=options.open_timeout_s,
        )
    except (av.FFmpegError, OSError, ValueError) as e:
        raise DeviceError(f"cannot open the camera {spec.spec!r}: {e} ({_HINT})", spec.spec) from e
    if not isinstance(container, av.container.InputContainer) or not container.streams.video:
        container.close()
        raise DeviceError(f"{spec.spec!r} opened but has no video stream ({_HINT})", spec.spec)
    return container


def _jpeg(frame: VideoFrame, max_side: int | None, quality: int) -> bytes:
    """Blocking: scale (while converting, which is cheaper than after) and encode."""
    w, h = frame.width, frame.height
    if max_side is not None:
        w, h = scaled_size(w, h, max_side)
    image = frame.reformat(width=w, height=h, format="rgb24").to_image()
    return encode_jpeg(image, max(w, h), quality)
