"""The interface every glasses source implements, and what it declares it can do."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

__all__ = ["GlassesSource", "JpegFrame", "OpusPacket", "SourceCapabilities"]


@dataclass(frozen=True, slots=True)
class SourceCapabilities:
    """What a source's device has. The session builds ``SessionStart`` from it and
    only pumps or answers what is declared here."""

    camera: bool = False  # frames() yields
    microphone: bool = False  # audio() yields
    speaker: bool = False  # the wearer can hear speech (told to the server)
    haptics: bool = False  # told to the server
    display: bool = False  # told to the server
    still_capture: bool = False  # capture_still() answers the server's StillRequest
    max_fps: float = 0.0  # the most frames a second the camera delivers; 0 = unknown
    mic_rate_hz: int = 16000  # audio() packets are Opus at this rate ...
    mic_frame_ms: int = 20  # ... and this long each


@dataclass(frozen=True, slots=True)
class JpegFrame:
    jpeg: bytes
    capture_time_ms: int  # unix ms on the bridge's clock, when the camera saw it


@dataclass(frozen=True, slots=True)
class OpusPacket:
    data: bytes  # one raw Opus packet of ``mic_frame_ms``
    capture_time_ms: int  # unix ms of its first sample


class GlassesSource(ABC):
    """Camera, microphone and typed input of one pair of glasses.

    The session iterates ``frames()``, ``audio()`` and ``texts()`` concurrently once the
    server is ready, and treats the end of all three as the end of the walk. Whoever
    opens a source closes it (``aclose``); the session only reads from it. A new device
    implements ``capabilities`` and ``frames`` and whichever of the rest it has.
    """

    @property
    @abstractmethod
    def capabilities(self) -> SourceCapabilities: ...

    def start(self) -> None:  # noqa: B027 (optional hook)
        """The server's session clock starts now (its first ``SessionReady``).

        Called on the event loop before any iterator is read. A source that replays a
        recorded timeline anchors it here; a live one has nothing to do.
        """

    @abstractmethod
    def frames(self) -> AsyncIterator[JpegFrame]:
        """Camera frames as they are captured (an async generator); read only when
        ``capabilities.camera``."""

    async def audio(self) -> AsyncIterator[OpusPacket]:
        """Microphone packets, in order and without gaps; read only when
        ``capabilities.microphone``."""
        return
        yield  # an async generator that yields nothing

    async def texts(self) -> AsyncIterator[str]:
        """Typed input, if the device has a way to type; none by default."""
        return
        yield

    async def capture_still(self) -> JpegFrame | None:
        """A high-resolution still for a ``StillRequest``; asked only when
        ``capabilities.still_capture``. None when there is none to give."""
        return None

    def set_capture_rate(self, fps: float) -> None:  # noqa: B027 (optional hook)
        """The server's ``CaptureHint``: capture at most ``fps`` frames a second from the
        next frame on, never above the source's own rate (a hint at or above it lifts
        the cap). A source that does not pace itself (a replay) ignores it."""

    @property
    def capture_fps(self) -> float | None:
        """The rate the source captures at now; None when it does not pace itself."""
        return None

    async def aclose(self) -> None:  # noqa: B027 (optional hook)
        """Release the device (camera, BLE connection, open files)."""
