"""The speaker: one utterance at a time, highest priority first, cut at once.

``say`` returns a ``SpeechHandle`` (livekit's idea): the one object that knows an
utterance's id, kind and priority, can be interrupted, and resolves to what the
listener actually heard. Whoever cares — the engine trimming the model's memory to
what was heard, a test — waits on the handle instead of a callback web. The handle
is frozen (``speech_handle.py``); how far playback got lives in the speaker's own
``_Playback`` record. How each utterance sounds is ``voice.py``'s (``SessionVoice``).
Cutting has one implementation (``_cut``) behind two doors: ``SpeechHandle.interrupt``
cuts that one utterance, ``Speaker.interrupt`` stops the speaker (barge-in, "quiet",
a client stop): what plays is cut and what waits is dropped, alerts aside unless
asked. What waits, and in which order, is ``speech_queue.py``'s; what does not play
out is counted (``dropped``).

Audio is paced a little ahead of real-time playback (``lead_s``), not sent as fast
as TTS makes it: little is in flight when speech is cut, and the server can
estimate how much of an utterance was actually heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from server.engine.policy import Utterance
from server.events import AudioFormat, AudioOut, Cue, Speech, StopSpeaking
from server.session.outbox import Outbox
from server.session.speech_handle import (
    PlaybackResult,
    PlayoutObserver,
    SpeechHandle,
    SpeechObserver,
)
from server.session.speech_queue import SpeechQueue
from server.session.voice import SessionVoice
from server.telemetry.metrics import DECISION_TO_AUDIO, SPEECH_DROPPED
from server.voice.codec import PacketEncoder
from server.voice.tts.base import PcmChunk, TTSBackend, TTSError, VoiceOptions

__all__ = [
    "PlaybackResult",
    "PlayoutObserver",
    "Speaker",
    "SpeakerOptions",
    "SpeechHandle",
    "SpeechObserver",
]


@dataclass(frozen=True, slots=True)
class SpeakerOptions:
    lead_s: float = 0.4  # audio sent ahead of playback
    audio: bool = True  # the glasses have a speaker: synthesize and send AudioOut
    cues: bool = True  # the glasses can render earcons or haptics
    # TTS silent this long: the utterance is left to its captions, the rest goes on. 0: never.
    tts_timeout_s: float = 0.0


@dataclass(eq=False, slots=True)
class _Playback:
    """The speaker's record of one utterance: its handle and how far playback got."""

    handle: SpeechHandle
    done: asyncio.Future[PlaybackResult]
    more: AsyncIterator[str] | None  # clauses still being generated
    task: asyncio.Task[None] | None = None
    started_at: float | None = None  # when its first packet is due to play
    clauses: list[tuple[str, float]] = field(default_factory=list)  # (text, s) synthesized
    pieces: list[str] = field(default_factory=list)  # what was handed to TTS so far
    reported_ms: int | None = None  # from the bridge's PlaybackReport
    ends_at: float | None = None  # when its last packet sent so far is due to end playing

    @property
    def utterance(self) -> Utterance:
        return self.handle.utterance

    @property
    def text(self) -> str:
        return " ".join(self.pieces) if self.pieces else self.handle.utterance.text


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
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.tts = tts
        # How it sounds: the session's voice, the mode's, "louder"/"quieter" (voice.py).
        self.voice = SessionVoice(tts, voice)
        self.out_format = out_format
        self._out = out
        self._opus = opus  # Opus encoding for every session: one named thread
        self._options = options
        self._on_error = on_error
        self._clock = clock
        self._sleep = sleep
        self._queue: SpeechQueue[_Playback] = SpeechQueue()
        # What did not play out, by "reason/kind": waiting ones dropped, playing ones cut.
        self.dropped: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._current: _Playback | None = None
        # The last that was sent out whole: up to ``lead_s`` of it still plays.
        self._tail: _Playback | None = None
        self._recent: dict[str, _Playback] = {}
        self._observers: list[SpeechObserver] = []
        self._closing = False
        self._held = False
        self._stopped = False  # run() has returned

    # ------------------------------------------------------------------ control

    @property
    def speaking(self) -> SpeechHandle | None:
        return self._current.handle if self._current is not None else None

    def subscribe(self, observer: SpeechObserver) -> None:
        """It hears each caption piece and stop (a ``PlayoutObserver``, the audio too)."""
        self._observers.append(observer)

    def set_volume(self, volume: float) -> None:
        self.voice.set_volume(volume)

    def say(self, utt: Utterance, more: AsyncIterator[str] | None = None) -> SpeechHandle:
        """Queue ``utt``; ``more`` streams the rest of a reply still being generated."""
        done: asyncio.Future[PlaybackResult] = asyncio.get_running_loop().create_future()
        pb = _Playback(SpeechHandle(utt, done, lambda reason: self._cut(pb, reason)), done, more)
        if self._stopped:  # the session is ending: it will never play
            self._end(pb, "", "closed")
            return pb.handle
        cur = self._current
        if cur is not None and utt.cuts(cur.utterance):
            self._cut(cur, "preempted")
        elif cur is None:
            self._cut_tail("preempted", lambda tail: utt.cuts(tail.utterance))
        for old in self._queue.push(pb):  # a newer alert about the same thing
            self._end(old, "", "superseded")
        self._wake.set()
        return pb.handle

    def interrupt(self, reason: str, *, keep_alerts: bool = True) -> bool:
        """Cut what is playing (barge-in, "quiet", a client stop) and drop what waits;
        with ``keep_alerts`` an alert, playing or waiting, goes on. True if it cut one."""
        for pb in self._queue.take(lambda w: not (keep_alerts and w.utterance.preempt)):
            self._end(pb, "", reason)
        cur = self._current
        if cur is None:
            return self._cut_tail(reason, lambda tail: not (keep_alerts and tail.utterance.preempt))
        if keep_alerts and cur.utterance.preempt:
            return False
        self._cut(cur, reason)
        return True

    def playback_report(self, utterance_id: str, played_ms: int) -> None:
        pb = self._recent.get(utterance_id)
        if pb is not None:
            pb.reported_ms = played_ms

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
                pb = None if self._held else self._next()
                if pb is None:
                    if self._closing and not self._held:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._play_one(pb)
        finally:
            self._stopped = True
            for waiting in self._queue.take(lambda _: True):
                self._end(waiting, "", "closed")

    async def _play_one(self, pb: _Playback) -> None:
        self._current = pb
        self._recent[pb.handle.id] = pb
        if len(self._recent) > 32:
            self._recent.pop(next(iter(self._recent)))
        pb.task = asyncio.create_task(self._play(pb), name=f"play-{pb.handle.id}")
        try:
            await pb.task
            self._end(pb, pb.text)
            self._tail = pb
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if pb.task.cancelled() and not (me and me.cancelling()):
                return  # the utterance was cut (and resolved by _cut); the speaker goes on
            self._end(pb, self._heard_text(pb), "closed")
            raise
        finally:
            self._current = None
            for o in self._observers:
                o.speech_stopped()

    def _next(self) -> _Playback | None:
        pb, stale = self._queue.pop(self._clock())
        for old in stale:  # counted, in the trace and the session's stats
            self._end(old, "", "expired")
        return pb

    def _end(self, pb: _Playback, heard: str, reason: str = "") -> None:
        """Resolve ``pb`` (once); one that did not play out is counted by ``reason``."""
        if pb.done.done():
            return
        if reason:
            self._count_dropped(reason, pb)
        pb.done.set_result(PlaybackResult(pb.text, heard, bool(reason), reason))

    async def _play(self, pb: _Playback) -> None:
        utt = pb.handle.utterance
        if utt.cue is not None and self._options.cues:
            cue = Cue(utt.cue, intensity=utt.cue_intensity, clock_direction=utt.cue_direction)
            await self._out.put(cue)
        if not self._options.audio:  # glasses without a speaker: captions only
            async for piece in self._pieces(pb):
                await self._caption(pb, piece)
            return
        # A fresh encoder per utterance: a cut one may still be encoding in its
        # thread, and libopus state must never be shared between threads.
        encoder = PacketEncoder(self.out_format)
        packets = _Packets(lambda seq, data, last: self._send(pb, seq, data, last=last))
        loop = asyncio.get_running_loop()
        try:
            async for piece in self._pieces(pb):
                await self._caption(pb, piece)
                chunks = self.tts.stream(piece, self.voice.for_kind(pb.handle.kind))
                async with contextlib.aclosing(chunks):
                    while chunk := await _next_audio(chunks, self._options.tts_timeout_s):
                        self._played(pb, chunk.pcm, chunk.sample_rate)
                        pb.clauses.append((chunk.text, chunk.pcm.size / chunk.sample_rate))
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

    def _played(self, pb: _Playback, pcm: np.ndarray, rate: int) -> None:
        # It plays right after the clauses before it; a first packet is sent at once.
        now = self._clock()
        at = (now if pb.started_at is None else pb.started_at) + sum(s for _, s in pb.clauses)
        for o in self._observers:
            if isinstance(o, PlayoutObserver):
                o.speech_audio(pcm, rate, at - now)

    async def _caption(self, pb: _Playback, piece: str) -> None:
        # One Speech per piece: a streamed reply's captions arrive clause by clause.
        for o in self._observers:
            o.speech_started(piece)
        await self._out.put(Speech(pb.handle.id, piece, pb.handle.kind, pb.handle.priority))

    async def _pieces(self, pb: _Playback) -> AsyncIterator[str]:
        pb.pieces.append(pb.handle.utterance.text)
        yield pb.handle.utterance.text
        if pb.more is not None:
            async for piece in pb.more:
                if piece.strip():
                    pb.pieces.append(piece.strip())
                    yield piece.strip()

    async def _send(self, pb: _Playback, seq: int, data: bytes, *, last: bool) -> None:
        now = self._clock()
        if pb.started_at is None:
            pb.started_at = now
            decided = now - pb.handle.utterance.created_at
            DECISION_TO_AUDIO.labels(pb.handle.kind.value).observe(max(decided, 0.0))
        play_at = pb.started_at + seq * self.out_format.frame_ms / 1000
        pb.ends_at = play_at + self.out_format.frame_ms / 1000
        if play_at - self._options.lead_s > now:
            await self._sleep(play_at - self._options.lead_s - now)
        await self._out.put(AudioOut(pb.handle.id, seq, data, last=last))

    def _cut(self, pb: _Playback, reason: str) -> None:
        if pb.done.done():
            return  # a preempt and a barge-in in the same turn cut once
        if self._queue.remove(pb):  # not started yet: it simply never plays
            self._end(pb, "", reason)
            return
        if pb.task is not None and not pb.task.done():
            pb.task.cancel()
        self._end(pb, self._heard_text(pb), reason)
        # StopSpeaking is immediate: it goes out ahead of everything queued, and the
        # queued audio of the cut utterance is dropped.
        self._out.put_nowait(StopSpeaking((pb.handle.id,), reason))

    def _cut_tail(self, reason: str, cuts: Callable[[_Playback], bool]) -> bool:
        """Stop the end of the last utterance, sent whole but still playing on the
        glasses (up to ``lead_s``), when ``cuts`` says so. Its handle has resolved as
        heard; the cut is counted like any other and the bridge is told."""
        tail, self._tail = self._tail, None
        if tail is None or tail.ends_at is None or tail.ends_at <= self._clock():
            return False
        if not cuts(tail):
            self._tail = tail
            return False
        self._count_dropped(reason, tail)
        self._out.put_nowait(StopSpeaking((tail.handle.id,), reason))
        return True

    def _count_dropped(self, reason: str, pb: _Playback) -> None:
        kind = pb.handle.kind.value
        self.dropped[f"{reason}/{kind}"] += 1
        SPEECH_DROPPED.labels(kind, reason).inc()

    def _heard_text(self, pb: _Playback) -> str:
        if pb.started_at is None:
            return ""
        played_s = (
            pb.reported_ms / 1000 if pb.reported_ms is not None else self._clock() - pb.started_at
        )
        words: list[str] = []
        for text, secs in pb.clauses:
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

    def __init__(self, send: Callable[[int, bytes, bool], Awaitable[None]]) -> None:
        self._send = send
        self._seq = 0
        self._pending: bytes | None = None

    async def push(self, packets: list[bytes]) -> None:
        for pkt in packets:
            if self._pending is not None:
                await self._send(self._seq, self._pending, False)
                self._seq += 1
            self._pending = pkt

    async def finish(self) -> None:
        await self._send(self._seq, self._pending or b"", True)


async def _next_audio(chunks: AsyncGenerator[PcmChunk, None], timeout_s: float) -> PcmChunk | None:
    """The next clause's audio, None at the end. Only TTS is timed: a slow client is not."""
    try:
        async with asyncio.timeout(timeout_s if timeout_s > 0 else None):
            return await anext(chunks)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise TTSError(f"no audio within {timeout_s:g} s") from None


def _slices(pcm: np.ndarray, rate: int) -> list[np.ndarray]:
    """0.1 s, then 1 s pieces: the first packets go out early, the rest in bulk."""
    head = rate // 10
    cuts = [0, head, *range(head + rate, pcm.size, rate), pcm.size]
    return [pcm[a:b] for a, b in itertools.pairwise(cuts) if b > a]
