"""The Halo's speaker as an output of the playback sink.

``PlaybackSink(HaloSpeakerOutput(source, rate_hz, clock=clock))`` plays the server's
speech and earcons on the glasses: blocks are pulled in real time (``PacedOutput``;
with no clock, only on ``step()``), mixed to mono, resampled to the 16 kHz 16-bit PCM
the bridge's app opened the speaker with (``frame.speaker.start{encoder='pcm'}``), and
written to Halo's audio characteristic (``BrilliantBle.send_audio``) by one sender task.
Silent blocks are not sent: an open Halo stream plays silence by itself, and the link's
bandwidth is the photos'. Frame has no speaker.

The output ``confirms`` (``AudioOutput``): a block counts as heard only once its writes
went through to the glasses. One that cannot (no link, a write failing mid-drop, or
one waiting behind ``QUEUE_BLOCKS`` others because the link is slower than speech) is
dropped and counted, so a ``PlaybackReport`` never claims it. A cut discards the
blocks still waiting; at most the one being written goes on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import numpy as np

from mobile_bridge.clock import Clock
from mobile_bridge.sinks.outputs import PacedOutput, Render

__all__ = ["HALO_SPEAKER_RATE_HZ", "GlassesSpeaker", "HaloSpeakerOutput", "SpeakerOf"]

HALO_SPEAKER_RATE_HZ = 16000
QUEUE_BLOCKS = 25  # 0.5 s waiting for the link; Halo itself buffers 8 KB (~250 ms)
WRITE_TIMEOUT_S = 2.0  # a block whose writes take longer is counted as not heard


class GlassesSpeaker(Protocol):
    async def speaker_write(self, pcm16: bytes) -> bool:
        """16 kHz mono 16-bit PCM to the glasses; False when it did not go through."""
        ...


class SpeakerOf:
    """The speaker of whichever source ``current()`` gives (a watchdog restart opens a
    new one); a source without a speaker takes nothing."""

    def __init__(self, current: Callable[[], object]) -> None:
        self._current = current

    async def speaker_write(self, pcm16: bytes) -> bool:
        write = getattr(self._current(), "speaker_write", None)
        return write is not None and bool(await write(pcm16))


class HaloSpeakerOutput(PacedOutput):
    """Blocks of the session's audio-out rate → PCM on the Halo's speaker."""

    confirms = True

    def __init__(
        self, speaker: GlassesSpeaker, rate_hz: int = 24000, *, clock: Clock | None = None
    ) -> None:
        super().__init__(rate_hz, 1, 20, clock=clock, write=self._queue)
        self._speaker = speaker
        self._resampler: Any = None
        if rate_hz != HALO_SPEAKER_RATE_HZ:
            import soxr

            # "QQ": one block in, one block out; the better qualities release in bursts
            # (nothing for one block, 1.5 blocks the next), which would add a block of
            # delay and blur which block was heard. ``murmur-bridge live`` asks the
            # server for 16 kHz speech for the glasses, so it resamples nothing.
            self._resampler = soxr.ResampleStream(
                rate_hz, HALO_SPEAKER_RATE_HZ, 1, "float32", quality="QQ"
            )
        self._pending: deque[tuple[int, bytes]] = deque()  # (block, PCM), oldest first
        self._wake = asyncio.Event()
        self._settled: Callable[[int, bool], None] = lambda block, heard: None
        self._sender: asyncio.Task[None] | None = None
        self.writing: int | None = None  # the block being written now
        self.sent_blocks = 0
        self.dropped_blocks = 0  # not heard: no link, a failed write, or too far behind
        self.cut_blocks = 0  # discarded by a cut before they were written

    def bind(self, settled: Callable[[int, bool], None]) -> None:
        self._settled = settled

    def start(self, render: Render) -> None:
        super().start(render)
        self._sender = asyncio.get_running_loop().create_task(self._send())

    @property
    def busy(self) -> bool:
        """Blocks wait to be written, or one is being written."""
        return bool(self._pending) or self.writing is not None

    def _queue(self, block: np.ndarray) -> None:
        number = self.blocks_out - 1  # step() counts the block before writing it
        mono = block.mean(axis=1) if block.ndim == 2 else block
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono.astype(np.float32))
        pcm = np.clip(np.round(mono * 32767.0), -32768, 32767).astype("<i2")
        if not pcm.any():
            self._settled(number, True)  # silence: the open stream plays it by itself
            return
        if len(self._pending) >= QUEUE_BLOCKS:  # the link is behind: the oldest goes
            old, _ = self._pending.popleft()
            self.dropped_blocks += 1
            self._settled(old, False)
        self._pending.append((number, pcm.tobytes()))
        self._wake.set()

    def discard(self, blocks: Iterable[int]) -> None:
        cut = set(blocks)
        kept: deque[tuple[int, bytes]] = deque()
        for number, data in self._pending:
            if number in cut:
                self.cut_blocks += 1
                self._settled(number, False)
            else:
                kept.append((number, data))
        self._pending = kept

    async def _send(self) -> None:
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            number, data = self._pending.popleft()
            self.writing = number
            try:
                async with asyncio.timeout(WRITE_TIMEOUT_S):
                    heard = await self._speaker.speaker_write(data)
            except TimeoutError:
                heard = False
            finally:
                self.writing = None
            if heard:
                self.sent_blocks += 1
            else:
                self.dropped_blocks += 1
            self._settled(number, heard)

    def close(self) -> None:
        super().close()
        self._pending.clear()
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None
