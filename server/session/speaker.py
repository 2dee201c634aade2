"""The speaker: one utterance at a time, highest priority first, cut at once.

``say`` returns a ``SpeechHandle`` (livekit's idea): the one object that knows an
utterance's id, kind and priority, can be interrupted, and resolves to what the
listener actually heard. Whoever cares — the engine trimming the model's memory to
what was heard, a test — waits on the handle instead of a callback web.

Audio is paced a little ahead of real-time playback (``lead_s``) rather than
sent as fast as TTS makes it. That keeps ``StopSpeaking`` meaningful (little is
in flight when speech is cut) and lets the server estimate how much of an
utterance was actually heard.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from server.engine.policy import Utterance
from server.events import AudioFormat, AudioOut, Cue, Speech, StopSpeaking
from server.session.outbox import Outbox
from server.voice.codec import PacketEncoder
from server.voice.tts.base import TTSBackend, TTSError, VoiceOptions

__all__ = ["PlaybackResult", "Speaker", "SpeakerOptions", "SpeechHandle", "SpeechObserver"]

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class SpeechObserver(Protocol):
    """Told what Murmur is saying (the listener's echo guard)."""

    def speech_started(self, text: str) -> None: ...

    def speech_stopped(self) -> None: ...


@dataclass(frozen=True, slots=True)
class PlaybackResult:
    text: str  # what was handed to TTS
    heard: str  # what reached the listener's ear (all of ``text`` when it played out)
    interrupted: bool = False
    reason: str = ""  # why it was cut: preempted, barge_in, client, expired, closed


@dataclass(frozen=True, slots=True)
class SpeakerOptions:
    lead_s: float = 0.4  # audio sent ahead of playback
    audio: bool = True  # the glasses have a speaker: synthesize and send AudioOut
    cues: bool = True  # the glasses can render earcons or haptics


class SpeechHandle:
    """One utterance given to the speaker."""

    def __init__(self, utt: Utterance, more: AsyncIterator[str] | None, speaker: Speaker) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.utterance = utt
        self._speaker = speaker
        self._done: asyncio.Future[PlaybackResult] = asyncio.get_running_loop().create_future()
        # Playback state, the speaker's to keep:
        self.more = more  # clauses still being generated
        self.task: asyncio.Task[None] | None = None
        self.started_at: float | None = None  # when its first packet is due to play
        self.clauses: list[tuple[str, float]] = []  # (text, seconds) as synthesized
        self.pieces: list[str] = []  # what was handed to TTS so far
        self.reported_ms: int | None = None  # from the bridge's PlaybackReport

    @property
    def kind(self):  # type: ignore[no-untyped-def]
        return self.utterance.kind

    @property
    def priority(self) -> int:
        return self.utterance.priority

    @property
    def preempts(self) -> bool:
        """It cuts lower-priority speech that is playing when it arrives."""
        return self.utterance.preempt

    @property
    def text(self) -> str:
        return " ".join(self.pieces) if self.pieces else self.utterance.text

    def interrupt(self, reason: str = "client") -> None:
        """Cut it now if it plays, or drop it if it still waits."""
        self._speaker._cut(self, reason)

    def done(self) -> bool:
        return self._done.done()

    async def result(self) -> PlaybackResult:
        return await asyncio.shield(self._done)

    def add_done_callback(self, fn: Callable[[PlaybackResult], None]) -> None:
        self._done.add_done_callback(lambda f: fn(f.result()))

    def _resolve(self, heard: str, reason: str = "") -> None:
        if not self._done.done():
            self._done.set_result(PlaybackResult(self.text, heard, bool(reason), reason))


@dataclass(order=True)
class _Queued:
    rank: tuple[int, int]
    handle: SpeechHandle = field(compare=False)


class Speaker:
    def __init__(
        self,
        tts: TTSBackend,
        voice: VoiceOptions,
        out_format: AudioFormat,
        out: Outbox,
        *,
        opus: Executor,
        options: SpeakerOptions = SpeakerOptions(),
        on_error: Callable[[Exception], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.tts = tts
        self.voice = voice
        self.out_format = out_format
        self._out = out
        self._opus = opus  # Opus encoding for every session: one named thread
        self._options = options
        self._on_error = on_error
        self._clock = clock
        self._sleep = sleep
        self._queue: list[_Queued] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._current: SpeechHandle | None = None
        self._recent: dict[str, SpeechHandle] = {}
        self._observers: list[SpeechObserver] = []
        self._closing = False
        self._held = False
        self._stopped = False  # run() has returned

    # ------------------------------------------------------------------ control

    @property
    def speaking(self) -> SpeechHandle | None:
        return self._current

    def subscribe(self, observer: SpeechObserver) -> None:
        self._observers.append(observer)

    def set_volume(self, volume: float) -> None:
        self.voice = replace(self.voice, volume=min(max(volume, 0.0), 1.0))

    def say(self, utt: Utterance, more: AsyncIterator[str] | None = None) -> SpeechHandle:
        """Queue ``utt``; ``more`` streams the rest of a reply still being generated."""
        handle = SpeechHandle(utt, more, self)
        if self._stopped:  # the session is ending: it will never play
            handle._resolve("", "closed")
            return handle
        cur = self._current
        if cur is not None and utt.preempt and utt.priority > cur.priority:
            self._cut(cur, "preempted")
        heapq.heappush(self._queue, _Queued((-utt.priority, next(self._order)), handle))
        self._wake.set()
        return handle

    def interrupt(self, reason: str, *, keep_alerts: bool = True) -> bool:
        """Cut what is playing (barge-in, "quiet", a client stop) and drop what waits
        (alerts stay unless ``keep_alerts`` is False). True if anything was playing."""
        kept = [q for q in self._queue if keep_alerts and q.handle.preempts]
        for q in self._queue:
            if q not in kept:
                q.handle._resolve("", reason)
        self._queue = kept
        heapq.heapify(self._queue)
        cur = self._current
        if cur is None:
            return False
        self._cut(cur, reason)
        return True

    def playback_report(self, utterance_id: str, played_ms: int) -> None:
        h = self._recent.get(utterance_id)
        if h is not None:
            h.reported_ms = played_ms

    def hold(self, reason: str) -> None:
        """Nobody is listening (the stream dropped): cut what plays — it is not
        replayed — and start nothing new until ``release``; the queue waits."""
        self._held = True
        if self._current is not None:
            self._cut(self._current, reason)

    def release(self) -> None:
        self._held = False
        self._wake.set()

    def close(self) -> None:
        """Finish what is queued, then stop (the client half-closed)."""
        self._closing = True
        self._wake.set()

    # ------------------------------------------------------------------ task

    async def run(self) -> None:
        try:
            while True:
                h = None if self._held else self._next()
                if h is None:
                    if self._closing and not self._held:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._play_one(h)
        finally:
            self._stopped = True
            for q in self._queue:
                q.handle._resolve("", "closed")

    async def _play_one(self, h: SpeechHandle) -> None:
        self._current = h
        self._recent[h.id] = h
        if len(self._recent) > 32:
            self._recent.pop(next(iter(self._recent)))
        h.task = asyncio.create_task(self._play(h), name=f"play-{h.id}")
        try:
            await h.task
            h._resolve(h.text)
        except asyncio.CancelledError:
            if h.task.cancelled() and not _current_task_cancelling():
                return  # the utterance was cut (and resolved by _cut); the speaker goes on
            h._resolve(self._heard_text(h), "closed")
            raise
        finally:
            self._current = None
            for o in self._observers:
                o.speech_stopped()

    def _next(self) -> SpeechHandle | None:
        now = self._clock()
        while self._queue:
            h = heapq.heappop(self._queue).handle
            if h.utterance.expires_at >= now:
                return h
            log.debug("dropped stale %s utterance", h.kind)
            h._resolve("", "expired")
        return None

    async def _play(self, h: SpeechHandle) -> None:
        utt = h.utterance
        if utt.cue is not None and self._options.cues:
            await self._out.put(Cue(utt.cue, intensity=0.8, clock_direction=utt.cue_direction))
        if not self._options.audio:  # glasses without a speaker: captions only
            async for piece in self._pieces(h):
                await self._caption(h, piece)
            return
        # A fresh encoder per utterance: a cut one may still be encoding in its
        # thread, and libopus state must never be shared between threads.
        encoder = PacketEncoder(self.out_format)
        packets = _Packets(self, h)
        loop = asyncio.get_running_loop()
        try:
            async for piece in self._pieces(h):
                await self._caption(h, piece)
                async for chunk in self.tts.stream(piece, self.voice):
                    h.clauses.append((chunk.text, chunk.pcm.size / chunk.sample_rate))
                    # Encode a short head first (Opus costs ~0.3 ms a packet): the
                    # first packet leaves ~30 ms sooner than after a whole clause.
                    for part in _slices(chunk.pcm, chunk.sample_rate):
                        encoded = await loop.run_in_executor(
                            self._opus, encoder.encode, part, chunk.sample_rate
                        )
                        await packets.push(encoded)
        except TTSError as e:
            if self._on_error is not None:
                await self._on_error(e)
        await packets.push(encoder.flush())
        await packets.finish()

    async def _caption(self, h: SpeechHandle, piece: str) -> None:
        # One Speech per piece: a streamed reply's captions arrive clause by clause.
        for o in self._observers:
            o.speech_started(piece)
        await self._out.put(Speech(h.id, piece, h.kind, h.priority))

    async def _pieces(self, h: SpeechHandle) -> AsyncIterator[str]:
        h.pieces.append(h.utterance.text)
        yield h.utterance.text
        if h.more is not None:
            async for piece in h.more:
                if piece.strip():
                    h.pieces.append(piece.strip())
                    yield piece.strip()

    async def _send(self, h: SpeechHandle, seq: int, data: bytes, *, last: bool) -> None:
        now = self._clock()
        if h.started_at is None:
            h.started_at = now
        play_at = h.started_at + seq * self.out_format.frame_ms / 1000
        if play_at - self._options.lead_s > now:
            await self._sleep(play_at - self._options.lead_s - now)
        await self._out.put(AudioOut(h.id, seq, data, last=last))

    def _cut(self, h: SpeechHandle, reason: str) -> None:
        if h.done():
            return  # a preempt and a barge-in in the same turn cut once
        waiting = [q for q in self._queue if q.handle is h]
        if waiting:  # not started yet: it simply never plays
            self._queue.remove(waiting[0])
            heapq.heapify(self._queue)
            h._resolve("", reason)
            return
        if h.task is not None and not h.task.done():
            h.task.cancel()
        h._resolve(self._heard_text(h), reason)
        # StopSpeaking is immediate: it goes out ahead of everything queued, and the
        # queued audio of the cut utterance is dropped.
        self._out.put_nowait(StopSpeaking((h.id,), reason))

    def _heard_text(self, h: SpeechHandle) -> str:
        if h.started_at is None:
            return ""
        played_s = (
            h.reported_ms / 1000 if h.reported_ms is not None else self._clock() - h.started_at
        )
        words: list[str] = []
        for text, secs in h.clauses:
            if played_s >= secs:
                words.extend(text.split())
                played_s -= secs
                continue
            part = text.split()
            words.extend(part[: int(len(part) * max(played_s, 0.0) / secs)] if secs else [])
            break
        return " ".join(words)


class _Packets:
    """Paces an utterance's packets out, holding one back so the last says last=True."""

    def __init__(self, speaker: Speaker, handle: SpeechHandle) -> None:
        self._speaker = speaker
        self._handle = handle
        self._seq = 0
        self._pending: bytes | None = None

    async def push(self, packets: list[bytes]) -> None:
        for pkt in packets:
            if self._pending is not None:
                await self._speaker._send(self._handle, self._seq, self._pending, last=False)
                self._seq += 1
            self._pending = pkt

    async def finish(self) -> None:
        await self._speaker._send(self._handle, self._seq, self._pending or b"", last=True)


def _slices(pcm: np.ndarray, rate: int) -> list[np.ndarray]:
    """0.1 s, then 1 s pieces: the first packets go out early, the rest in bulk."""
    head = rate // 10
    cuts = [0, head, *range(head + rate, pcm.size, rate), pcm.size]
    return [pcm[a:b] for a, b in itertools.pairwise(cuts) if b > a]


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return bool(task and task.cancelling())
