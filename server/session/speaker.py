"""The speaker: one utterance at a time, highest priority first, cut at once.

Audio is paced a little ahead of real-time playback (``lead_s``) rather than
sent as fast as TTS makes it. That keeps ``StopSpeaking`` meaningful (little is
in flight when speech is cut) and lets the server estimate how much of an
utterance was actually heard, so the model's context keeps only that.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from server.engine.policy import Utterance
from server.events import AudioFormat, AudioOut, Cue, ServerEvent, Speech, StopSpeaking
from server.voice.codec import PacketEncoder
from server.voice.tts.base import TTSBackend, TTSError, VoiceOptions, split_clauses

__all__ = ["Speaker"]

log = logging.getLogger(__name__)

# Opus encoding for every session's speech: one thread, not the loop's default
# pool, which grows with load and has no name in a thread dump.
_OPUS = ThreadPoolExecutor(1, thread_name_prefix="opus-encode")

OnCut = Callable[[str, str], None]  # (utterance text, heard part)


class SpeechOut(Protocol):
    """Where the speaker's events go (the session's outbox)."""

    async def emit(self, event: ServerEvent) -> None: ...

    def urgent(self, event: ServerEvent, drop_audio_of: tuple[str, ...]) -> None:
        """Send ``event`` before anything queued, dropping queued audio of those ids."""


@dataclass
class _Playing:
    uid: str
    utt: Utterance
    more: AsyncIterator[str] | None = None  # clauses still being generated
    task: asyncio.Task[None] | None = None
    started_at: float | None = None  # when its first packet is due to play
    clauses: list[tuple[str, float]] = field(default_factory=list)  # (text, seconds)
    reported_ms: int | None = None  # from the bridge's PlaybackReport
    pieces: list[str] = field(default_factory=list)  # what was handed to TTS so far
    cut: bool = False

    @property
    def text(self) -> str:
        return " ".join(self.pieces) if self.pieces else self.utt.text


class Speaker:
    def __init__(
        self,
        tts: TTSBackend,
        voice: VoiceOptions,
        out_format: AudioFormat,
        out: SpeechOut,
        *,
        on_cut: OnCut | None = None,
        on_error: Callable[[Exception], Awaitable[None]] | None = None,
        lead_s: float = 0.4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tts = tts
        self.voice = voice
        self.out_format = out_format
        self._out = out
        self._emit = out.emit
        self._on_cut = on_cut
        self._on_error = on_error
        self._lead = lead_s
        self._clock = clock
        self._queue: list[tuple[int, int, tuple[Utterance, AsyncIterator[str] | None]]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._current: _Playing | None = None
        self._recent: dict[str, _Playing] = {}
        self._closing = False

    # ------------------------------------------------------------------ control

    @property
    def speaking(self) -> Utterance | None:
        return self._current.utt if self._current else None

    def say(self, utt: Utterance, more: AsyncIterator[str] | None = None) -> None:
        """Queue ``utt``; ``more`` streams the rest of a reply still being generated."""
        cur = self._current
        if cur is not None and utt.preempt and utt.priority > cur.utt.priority:
            self._cut(cur, "preempted")
        heapq.heappush(self._queue, (-utt.priority, next(self._order), (utt, more)))
        self._wake.set()

    def interrupt(self, reason: str, *, keep_alerts: bool = True) -> bool:
        """Cut what is playing (barge-in, "quiet", a client stop). True if anything was."""
        cur = self._current
        if keep_alerts:
            self._queue = [q for q in self._queue if q[2][0].preempt]
            heapq.heapify(self._queue)
        else:
            self._queue.clear()
        if cur is None:
            return False
        self._cut(cur, reason)
        return True

    def playback_report(self, utterance_id: str, played_ms: int) -> None:
        p = self._recent.get(utterance_id)
        if p is not None:
            p.reported_ms = played_ms

    def close(self) -> None:
        """Finish what is queued, then stop (the client half-closed)."""
        self._closing = True
        self._wake.set()

    # ------------------------------------------------------------------ task

    async def run(self) -> None:
        while True:
            item = self._next()
            if item is None:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            playing = _Playing(uid=uuid.uuid4().hex[:12], utt=item[0], more=item[1])
            self._current = playing
            self._recent[playing.uid] = playing
            if len(self._recent) > 32:
                self._recent.pop(next(iter(self._recent)))
            playing.task = asyncio.create_task(self._play(playing), name=f"play-{playing.uid}")
            try:
                await playing.task
            except asyncio.CancelledError:
                if playing.task.cancelled() and not _current_task_cancelling():
                    continue  # the utterance was cut; the speaker goes on
                raise
            finally:
                self._current = None

    def _next(self) -> tuple[Utterance, AsyncIterator[str] | None] | None:
        now = self._clock()
        while self._queue:
            _, _, item = heapq.heappop(self._queue)
            if item[0].expires_at >= now:
                return item
            log.debug("dropped stale %s utterance", item[0].kind)
        return None

    async def _play(self, p: _Playing) -> None:
        utt = p.utt
        if utt.cue is not None:
            await self._emit(Cue(utt.cue, intensity=0.8, clock_direction=utt.cue_direction))
        # A fresh encoder per utterance: a cut one may still be encoding in its
        # thread, and libopus state must never be shared between threads.
        encoder = PacketEncoder(self.out_format)
        loop = asyncio.get_running_loop()
        seq = 0
        pending: bytes | None = None  # held back one packet so the last can carry last=True
        try:
            async for piece in self._pieces(p):
                # One Speech per piece: a streamed reply's captions arrive clause by clause.
                await self._emit(Speech(p.uid, piece, utt.kind, utt.priority))
                clauses = split_clauses(piece)
                async for chunk in self.tts.stream(piece, self.voice):
                    text = clauses.pop(0) if clauses else ""
                    p.clauses.append((text, chunk.pcm.size / chunk.sample_rate))
                    # Encode a short head first (Opus costs ~0.3 ms a packet): the
                    # first packet leaves ~30 ms sooner than after a whole clause.
                    for part in _slices(chunk.pcm, chunk.sample_rate):
                        packets = await loop.run_in_executor(
                            _OPUS, encoder.encode, part, chunk.sample_rate
                        )
                        for pkt in packets:
                            if pending is not None:
                                await self._send(p, seq, pending, last=False)
                                seq += 1
                            pending = pkt
        except TTSError as e:
            if self._on_error is not None:
                await self._on_error(e)
        for pkt in encoder.flush():
            if pending is not None:
                await self._send(p, seq, pending, last=False)
                seq += 1
            pending = pkt
        await self._send(p, seq, pending or b"", last=True)

    async def _pieces(self, p: _Playing) -> AsyncIterator[str]:
        p.pieces.append(p.utt.text)
        yield p.utt.text
        if p.more is not None:
            async for piece in p.more:
                if piece.strip():
                    p.pieces.append(piece.strip())
                    yield piece.strip()

    async def _send(self, p: _Playing, seq: int, data: bytes, *, last: bool) -> None:
        now = self._clock()
        if p.started_at is None:
            p.started_at = now
        play_at = p.started_at + seq * self.out_format.frame_ms / 1000
        if play_at - self._lead > now:
            await asyncio.sleep(play_at - self._lead - now)
        await self._emit(AudioOut(p.uid, seq, data, last=last))

    def _cut(self, p: _Playing, reason: str) -> None:
        if p.cut:
            return  # a preempt and a barge-in in the same turn cut once
        p.cut = True
        if p.task is not None and not p.task.done():
            p.task.cancel()
        heard = self._heard_text(p)
        # StopSpeaking goes out ahead of everything queued, and the queued audio of
        # the cut utterance is dropped: a cut must not wait behind what it cuts.
        self._out.urgent(StopSpeaking((p.uid,), reason), (p.uid,))
        if self._on_cut is not None and heard != p.text:
            self._on_cut(p.text, heard)

    def _heard_text(self, p: _Playing) -> str:
        if p.started_at is None:
            return ""
        played_s = (
            p.reported_ms / 1000 if p.reported_ms is not None else self._clock() - p.started_at
        )
        words: list[str] = []
        for text, secs in p.clauses:
            if played_s >= secs:
                words.extend(text.split())
                played_s -= secs
                continue
            part = text.split()
            words.extend(part[: int(len(part) * max(played_s, 0.0) / secs)] if secs else [])
            break
        return " ".join(words)


def _slices(pcm: np.ndarray, rate: int) -> list[np.ndarray]:
    """0.1 s, then 1 s pieces: the first packets go out early, the rest in bulk."""
    head = rate // 10
    cuts = [0, head, *range(head + rate, pcm.size, rate), pcm.size]
    return [pcm[a:b] for a, b in itertools.pairwise(cuts) if b > a]


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return bool(task and task.cancelling())
