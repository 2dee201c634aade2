"""The Halo's speaker as an output of the playback sink.

``PlaybackSink(HaloSpeakerOutput(source, rate_hz))`` plays the server's speech and
earcons on the glasses: blocks are pulled in real time (``PacedOutput``), mixed to mono,
resampled to the 16 kHz 16-bit PCM the bridge's app opened the speaker with
(``frame.speaker.start{encoder='pcm'}``), and written to Halo's audio characteristic
(``BrilliantBle.send_audio``). Silent blocks are not sent: an open Halo stream plays
silence by itself, and the link's bandwidth is the photos'. Frame has no speaker.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import numpy as np

from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.sinks.outputs import PacedOutput, Render

if TYPE_CHECKING:
    from mobile_bridge.sources.brilliant import BrilliantSource

__all__ = ["HALO_SPEAKER_RATE_HZ", "HaloSpeakerOutput"]

HALO_SPEAKER_RATE_HZ = 16000
QUEUE_BLOCKS = 25  # 0.5 s waiting for the link; Halo itself buffers 8 KB (~250 ms)


class HaloSpeakerOutput(PacedOutput):
    """Blocks of the session's audio-out rate → PCM on the Halo's speaker.

    While the glasses are away (a reconnect), blocks are dropped and counted in
    ``dropped_blocks``: speech must not pile up and play late.
    """

    def __init__(
        self, source: BrilliantSource, rate_hz: int = 24000, *, clock: Clock | None = None
    ) -> None:
        super().__init__(rate_hz, 1, 20, clock=clock or SystemClock(), write=self._queue)
        self._source = source
        self._resampler: Any = None
        if rate_hz != HALO_SPEAKER_RATE_HZ:
            import soxr

            self._resampler = soxr.ResampleStream(rate_hz, HALO_SPEAKER_RATE_HZ, 1, "float32")
        self._pending: asyncio.Queue[bytes] = asyncio.Queue(maxsize=QUEUE_BLOCKS)
        self._sender: asyncio.Task[None] | None = None
        self.sent_blocks = 0
        self.dropped_blocks = 0

    def start(self, render: Render) -> None:
        super().start(render)
        self._sender = asyncio.get_running_loop().create_task(self._send())

    def _queue(self, block: np.ndarray) -> None:
        mono = block.mean(axis=1) if block.ndim == 2 else block
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono.astype(np.float32))
        pcm = np.clip(np.round(mono * 32767.0), -32768, 32767).astype("<i2")
        if not pcm.any():
            return
        if self._pending.full():
            self._pending.get_nowait()
            self.dropped_blocks += 1
        self._pending.put_nowait(pcm.tobytes())

    async def _send(self) -> None:
        while True:
            data = await self._pending.get()
            if await self._source.speaker_write(data):
                self.sent_blocks += 1
            else:
                self.dropped_blocks += 1

    def close(self) -> None:
        super().close()
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None
