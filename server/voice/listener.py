"""The per-session audio-in pipeline: packets → PCM → VAD → ASR → events.

``feed`` does only cheap work inline (Opus decode, resampling to 16 kHz, VAD at a
few µs per frame), so ``SpeechStarted`` — the session's barge-in signal — leaves
within a millisecond of the audio that crossed ``min_speech_ms``. Transcription
runs in a background task owned by the listener, on the ASR backend's executor,
one call at a time: partials while the user speaks (throttled, and skipped rather
than queued when ASR is slower than the throttle) and one final per utterance.

Echo: open-ear speakers on glasses leak Murmur's own voice into the microphone.
Bridges should capture with the phone's acoustic echo cancellation on (Android
``VOICE_COMMUNICATION`` source / iOS ``.voiceChat`` mode); that is the first line of
defence. The echo guard here is the second: the session tells the listener what
Murmur is saying (``set_speaking``), and a final transcript made mostly of those
words is dropped instead of being taken as the user's query.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr

from server.events import AudioFormat, Notice
from server.voice.asr.base import ASR_SAMPLE_RATE, ASRBackend, ASRError
from server.voice.codec import PacketDecoder
from server.voice.vad import SpeechEnd, SpeechStart, VADOptions, VoiceActivityDetector

__all__ = [
    "AudioListener",
    "EchoDropped",
    "ListenerEvent",
    "ListenerOptions",
    "SpeechEnded",
    "SpeechStarted",
    "TranscriptFinal",
    "TranscriptPartial",
    "echo_overlap",
]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The user has been speaking for ``min_speech_ms``: barge-in now."""

    at_ms: int  # capture time of the speech onset
    detected_at_ms: int  # capture time of the audio that crossed min_speech_ms
    utterance: int = 0
    # Murmur was speaking (per set_speaking): without echo cancellation on the
    # bridge this may be Murmur hearing itself, and the session may want more proof.
    during_playback: bool = False


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    at_ms: int  # capture time just after the last voiced frame
    utterance: int = 0


@dataclass(frozen=True, slots=True)
class TranscriptPartial:
    text: str
    utterance: int = 0


@dataclass(frozen=True, slots=True)
class TranscriptFinal:
    text: str
    utterance: int = 0
    start_ms: int = 0  # capture times of the utterance
    end_ms: int = 0
    asr_ms: float = 0.0  # time spent transcribing it


@dataclass(frozen=True, slots=True)
class EchoDropped:
    """A final transcript that was Murmur hearing itself (for logs and traces only)."""

    text: str
    overlap: float
    utterance: int = 0


# ASR failures arrive as a server.events.Notice (code "asr.failed").
ListenerEvent = (
    SpeechStarted | SpeechEnded | TranscriptPartial | TranscriptFinal | EchoDropped | Notice
)
Emit = Callable[[ListenerEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ListenerOptions:
    min_speech_ms: int = 300  # voiced audio before SpeechStarted (a cough is shorter)
    hangover_ms: int = 600  # silence that ends an utterance
    vad_aggressiveness: int = 2  # WebRTC VAD mode 0..3
    partial_interval_ms: int = 700  # of audio between partials; 0 = no partials
    pre_roll_ms: int = 250  # audio kept before the detected onset, for ASR
    max_utterance_ms: int = 30_000  # longer speech keeps its newest part (drops counted)
    max_pending_finals: int = 4  # utterances waiting for ASR; the oldest is dropped
    language: str | None = None  # passed to ASR; None = the backend's own
    echo_overlap: float = 0.6  # share of transcript words found in Murmur's speech
    echo_min_words: int = 2  # shorter transcripts ("stop") are never called echo
    echo_tail_s: float = 4.0  # how long after Murmur stops its words still count


@dataclass(slots=True)
class _Final:
    utterance: int
    audio: np.ndarray
    start_ms: int
    end_ms: int
    echo_words: frozenset[str]


_WORD = re.compile(r"\w+(?:'\w+)?")
# Audio DSP for every session: cheap, sequential per session, never on the loop.
_DSP = ThreadPoolExecutor(1, thread_name_prefix="audio-dsp")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def echo_overlap(transcript: str, spoken_words: frozenset[str] | set[str]) -> float:
    """Share of the transcript's words that Murmur itself was saying."""
    words = _words(transcript)
    if not words:
        return 0.0
    return sum(w in spoken_words for w in words) / len(words)


class _Ring:
    """16 kHz audio addressed by absolute sample index, bounded, whole chunks dropped."""

    def __init__(self) -> None:
        self._chunks: deque[np.ndarray] = deque()
        self.start = 0  # absolute index of the first kept sample
        self.size = 0

    @property
    def end(self) -> int:
        return self.start + self.size

    def append(self, pcm: np.ndarray, limit: int) -> int:
        """Add ``pcm``; drop the oldest chunks beyond ``limit`` samples; return samples dropped."""
        if pcm.size:
            self._chunks.append(pcm)
            self.size += pcm.size
        dropped = 0
        while self._chunks and self.size - self._chunks[0].size >= limit:
            old = self._chunks.popleft()
            self.start += old.size
            self.size -= old.size
            dropped += old.size
        return dropped

    def slice(self, a: int, b: int) -> np.ndarray:
        a, b = max(a, self.start), min(b, self.end)
        if b <= a:
            return np.zeros(0, dtype=np.int16)
        joined = np.concatenate(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        return joined[a - self.start : b - self.start].copy()


class AudioListener:
    def __init__(
        self,
        fmt: AudioFormat,
        asr: ASRBackend,
        emit: Emit,
        options: ListenerOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.format = fmt
        self.asr = asr
        self.options = opts = options or ListenerOptions()
        self._emit = emit
        self._clock = clock
        self._decoder = PacketDecoder(fmt)
        self._resampler = (
            soxr.ResampleStream(fmt.sample_rate_hz, ASR_SAMPLE_RATE, 1, dtype="int16")
            if fmt.sample_rate_hz != ASR_SAMPLE_RATE
            else None
        )
        self._vad = VoiceActivityDetector(
            VADOptions(
                sample_rate=ASR_SAMPLE_RATE,
                aggressiveness=opts.vad_aggressiveness,
                min_speech_ms=opts.min_speech_ms,
                hangover_ms=opts.hangover_ms,
            )
        )
        self._ring = _Ring()
        # While quiet, keep enough for the onset search and the pre-roll.
        self._idle_keep = self._samples(opts.pre_roll_ms + opts.min_speech_ms + 1000)
        self._max_utterance = self._samples(opts.max_utterance_ms)
        self._utterance = 0
        # Absolute sample where the current utterance's audio begins; None while quiet.
        self._utt_start: int | None = None
        self._onset_ms = 0
        self._last_partial_sample = 0
        self._last_partial_text = ""
        self._last_capture_ms = 0
        self._finals: deque[_Final] = deque()
        self._partial_wanted = False
        self._busy = False  # an ASR call is running
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._speaking_words: frozenset[str] | None = None
        self._recent_speech: deque[tuple[float, frozenset[str]]] = deque(maxlen=8)
        self.stats = {
            "packets": 0,
            "dropped_samples": 0,
            "dropped_finals": 0,
            "partials": 0,
            "skipped_partials": 0,
            "finals": 0,
            "echo_dropped": 0,
            "asr_errors": 0,
        }

    # ------------------------------------------------------------------ input

    async def feed(self, packet: bytes, capture_time_ms: int) -> None:
        """One inbound packet. Raises ``Recoverable`` for a bad packet; the next one is fine."""
        if self._closed:
            return
        # Opus decoding, resampling and VAD run off the event loop, in one thread
        # shared by every session (about 0.1 ms a packet). feed() calls of one
        # session never overlap, so its codec and VAD state see one caller at a time.
        loop = asyncio.get_running_loop()
        pcm, raw_ms, events = await loop.run_in_executor(_DSP, self._decode_and_detect, packet)
        self.stats["packets"] += 1
        # Capture time of the end of this packet: the newest sample in the ring.
        self._last_capture_ms = capture_time_ms + raw_ms
        limit = self._max_utterance if self._utt_start is not None else self._idle_keep
        dropped = self._ring.append(pcm, limit)
        if self._utt_start is not None and dropped:
            self.stats["dropped_samples"] += dropped
            self._utt_start = max(self._utt_start, self._ring.start)
        for event in events:
            if isinstance(event, SpeechStart):
                await self._on_start(event)
            else:
                await self._on_end(event)
        self._maybe_want_partial()

    def _decode_and_detect(self, packet: bytes) -> tuple[np.ndarray, int, list[Any]]:
        """In the DSP thread: packet → 16 kHz PCM, its length in ms, and VAD events."""
        pcm = self._decoder.decode(packet)
        raw_ms = pcm.size * 1000 // self.format.sample_rate_hz
        if self._resampler is not None:
            pcm = self._resampler.resample_chunk(pcm)
        return pcm, raw_ms, list(self._vad.feed(pcm))

    def set_speaking(self, text: str | None) -> None:
        """What Murmur is saying now (None: it stopped). Its words count as echo until
        ``echo_tail_s`` after it stops."""
        now = self._clock()
        if self._speaking_words is not None:
            self._recent_speech.append((now + self.options.echo_tail_s, self._speaking_words))
        self._speaking_words = frozenset(_words(text)) if text else None

    async def close(self) -> None:
        """Stop transcribing. Pending utterances are dropped."""
        self._closed = True
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            # The worker's own cancellation ends here; a cancellation of our caller
            # must go on.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    @property
    def speaking(self) -> bool:
        return self._utt_start is not None

    # ------------------------------------------------------------------ VAD events

    async def _on_start(self, event: SpeechStart) -> None:
        self._utterance += 1
        self._utt_start = max(
            event.onset_sample - self._samples(self.options.pre_roll_ms), self._ring.start
        )
        self._onset_ms = self._capture_ms(event.onset_sample)
        self._last_partial_sample = event.detected_sample
        self._last_partial_text = ""
        await self._emit(
            SpeechStarted(
                self._onset_ms,
                self._capture_ms(event.detected_sample),
                self._utterance,
                during_playback=self._speaking_words is not None,
            )
        )

    async def _on_end(self, event: SpeechEnd) -> None:
        start = self._utt_start if self._utt_start is not None else self._ring.start
        self._utt_start = None
        # A little trailing audio helps Whisper finish the last word.
        audio = self._ring.slice(start, event.end_sample + self._samples(150))
        end_ms = self._capture_ms(event.end_sample)
        if len(self._finals) >= self.options.max_pending_finals:
            self._finals.popleft()
            self.stats["dropped_finals"] += 1
        self._finals.append(
            _Final(self._utterance, audio, self._onset_ms, end_ms, self._echo_words())
        )
        self._partial_wanted = False
        self._ensure_worker()
        self._wake.set()
        await self._emit(SpeechEnded(end_ms, self._utterance))

    def _maybe_want_partial(self) -> None:
        interval = self._samples(self.options.partial_interval_ms)
        if self._utt_start is None or interval <= 0 or self._partial_wanted:
            return
        if self._vad.samples - self._last_partial_sample < interval:
            return
        self._last_partial_sample = self._vad.samples
        if self._busy or self._finals:
            # ASR is slower than the throttle: skip this partial rather than queue it.
            self.stats["skipped_partials"] += 1
            return
        self._partial_wanted = True
        self._ensure_worker()
        self._wake.set()

    # ------------------------------------------------------------------ ASR worker

    def _ensure_worker(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._worker(), name="listener-asr")

    async def _worker(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._finals or self._partial_wanted:
                try:
                    if self._finals:
                        await self._final(self._finals.popleft())
                    else:
                        self._partial_wanted = False
                        await self._partial()
                except Exception:  # one bad utterance must not end listening
                    log.exception("listener: transcription step failed")

    async def _partial(self) -> None:
        utterance, start = self._utterance, self._utt_start
        if start is None:
            return
        audio = self._ring.slice(start, self._ring.end)
        text = await self._transcribe(audio, partial=True)
        # The utterance may have ended (or a new one begun) while ASR ran.
        if not text or utterance != self._utterance or self._utt_start is None:
            return
        if self._is_echo(text, self._echo_words())[0]:
            return
        if text != self._last_partial_text:
            self._last_partial_text = text
            self.stats["partials"] += 1
            await self._emit(TranscriptPartial(text, utterance))

    async def _final(self, job: _Final) -> None:
        started = time.perf_counter()
        text = await self._transcribe(job.audio, partial=False)
        asr_ms = (time.perf_counter() - started) * 1000
        if not text:
            return
        echo, overlap = self._is_echo(text, job.echo_words)
        if echo:
            self.stats["echo_dropped"] += 1
            log.debug("dropped echo %r (%.0f%% of words were Murmur's)", text, overlap * 100)
            await self._emit(EchoDropped(text, overlap, job.utterance))
            return
        self.stats["finals"] += 1
        await self._emit(TranscriptFinal(text, job.utterance, job.start_ms, job.end_ms, asr_ms))

    async def _transcribe(self, audio: np.ndarray, *, partial: bool) -> str:
        self._busy = True
        try:
            return await self.asr.transcribe(audio, partial=partial, language=self.options.language)
        except ASRError as e:
            self.stats["asr_errors"] += 1
            log.warning("ASR failed: %s", e)
            if not partial:
                await self._emit(
                    Notice("asr.failed", f"speech could not be transcribed: {e}", "asr", True)
                )
            return ""
        finally:
            self._busy = False

    # ------------------------------------------------------------------ helpers

    def _is_echo(self, text: str, spoken: frozenset[str]) -> tuple[bool, float]:
        overlap = echo_overlap(text, spoken)
        words = len(_words(text))
        return (
            overlap >= self.options.echo_overlap and words >= self.options.echo_min_words,
            overlap,
        )

    def _echo_words(self) -> frozenset[str]:
        now = self._clock()
        words: set[str] = set(self._speaking_words or ())
        for until, spoken in self._recent_speech:
            if until >= now:
                words |= spoken
        return frozenset(words)

    def _samples(self, ms: int) -> int:
        return ASR_SAMPLE_RATE * ms // 1000

    def _capture_ms(self, sample: int) -> int:
        # The newest packet ends at ring.end; earlier samples are earlier by their distance.
        return self._last_capture_ms - (self._ring.end - sample) * 1000 // ASR_SAMPLE_RATE
