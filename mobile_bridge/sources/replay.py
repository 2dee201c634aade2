"""A recorded walk played back as if the glasses were live.

Frames go out at ``fps`` and the WAV as 20 ms Opus packets, both paced against the
clock from the moment the server says ``SessionReady``: the server labels ticks with
real elapsed seconds, so ``speed`` other than 1.0 is for quick tests only. Typed
input (``texts``) is sent at its media time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.media import OpusPacketizer, read_wav_pcm16
from mobile_bridge.sources.base import GlassesSource, JpegFrame, OpusPacket, SourceCapabilities
from mobile_bridge.sources.video import iter_video_frames

__all__ = ["MIC_FRAME_MS", "MIC_RATE_HZ", "FileReplaySource", "ReplayMedia"]

MIC_RATE_HZ = 16000
MIC_FRAME_MS = 20


@dataclass
class ReplayMedia:
    """What to replay and how fast."""

    video: str | Path  # a video file, a folder of stills, or one still
    audio: str | Path | None = None
    audio_at_s: float = 0.0  # where the WAV starts on the video's timeline
    texts: list[tuple[float, str]] = field(default_factory=list)  # typed input at media times
    fps: float = 1.0
    speed: float = 1.0
    max_side: int = 640
    jpeg_quality: int = 80


class FileReplaySource(GlassesSource):
    """Video, WAV and typed text from files, paced on ``clock``.

    Build it with ``await FileReplaySource.open(media)``, which fails on unusable
    media before anything connects.
    """

    def __init__(
        self,
        media: ReplayMedia,
        frames: Iterator[tuple[float, bytes]],
        packets: Sequence[bytes],
        clock: Clock | None = None,
    ) -> None:
        self.media = media
        self._frames = frames
        self._packets = packets
        self._clock = clock or SystemClock()
        self._t0_mono: float | None = None
        self._t0_unix = 0.0
        self._last_jpeg: bytes | None = None

    @classmethod
    async def open(cls, media: ReplayMedia, clock: Clock | None = None) -> FileReplaySource:
        """Check the media and load the audio; raises ``MediaError`` or ``ValueError``."""
        if media.fps <= 0 or media.speed <= 0:
            raise ValueError("fps and speed must be positive")
        frames = iter_video_frames(media.video, media.fps, media.max_side, media.jpeg_quality)
        # Fail on a bad video before connecting: pull the first frame now.
        first = await asyncio.to_thread(next, frames, None)
        packets = await asyncio.to_thread(_audio_packets, media.audio)
        return cls(media, _prepend(first, frames), packets, clock)

    @property
    def capabilities(self) -> SourceCapabilities:
        return SourceCapabilities(
            camera=True,
            microphone=self.media.audio is not None,
            speaker=False,  # none of its own: a player on the bridge is (the sink says)
            still_capture=True,  # answered with the last frame sent
            max_fps=self.media.fps,
            mic_rate_hz=MIC_RATE_HZ,
            mic_frame_ms=MIC_FRAME_MS,
        )

    def start(self) -> None:
        # The server's session clock starts now; the media timeline maps onto it.
        self._t0_mono, self._t0_unix = self._clock.monotonic(), self._clock.time()

    def media_time(self) -> float | None:
        """Seconds of media played so far; None before ``start``."""
        if self._t0_mono is None:
            return None
        return (self._clock.monotonic() - self._t0_mono) * self.media.speed

    async def frames(self) -> AsyncIterator[JpegFrame]:
        while True:
            # Decoding and JPEG encoding block: do them off the loop, ahead of the send time.
            item = await asyncio.to_thread(next, self._frames, None)
            if item is None:
                return
            t, jpeg = item
            capture_ms = await self._at(t)
            self._last_jpeg = jpeg
            yield JpegFrame(jpeg, capture_ms)

    async def audio(self) -> AsyncIterator[OpusPacket]:
        for seq, packet in enumerate(self._packets):
            capture_ms = await self._at(self.media.audio_at_s + seq * MIC_FRAME_MS / 1000)
            yield OpusPacket(packet, capture_ms)

    async def texts(self) -> AsyncIterator[str]:
        for t, text in sorted(self.media.texts):
            await self._at(t)
            yield text

    async def capture_still(self) -> JpegFrame | None:
        # A file has no higher resolution to offer: the newest frame sent, stamped now.
        if self._last_jpeg is None:
            return None
        return JpegFrame(self._last_jpeg, int(self._clock.time() * 1000))

    async def _at(self, media_t: float) -> int:
        """Sleep until ``media_t`` on the clock; its capture time in unix ms."""
        if self._t0_mono is None:
            raise RuntimeError("FileReplaySource.start() must come before reading media")
        wall = media_t / self.media.speed
        delay = self._t0_mono + wall - self._clock.monotonic()
        if delay > 0:
            await self._clock.sleep(delay)
        return int((self._t0_unix + wall) * 1000)


def _audio_packets(audio: str | Path | None) -> list[bytes]:
    if audio is None:
        return []
    pcm = read_wav_pcm16(audio, MIC_RATE_HZ)
    return list(OpusPacketizer(MIC_RATE_HZ, MIC_FRAME_MS).packets(pcm))


def _prepend(
    first: tuple[float, bytes] | None, rest: Iterator[tuple[float, bytes]]
) -> Iterator[tuple[float, bytes]]:
    if first is not None:
        yield first
    yield from rest
