"""The per-session audio-in pipeline: packets → PCM → VAD → ASR → events.

``feed`` does only cheap work (Opus decode, resampling to 16 kHz, VAD at a few µs
per frame, in the DSP executor the app hands in), so ``SpeechStarted`` — the
session's barge-in signal — leaves within a millisecond of the audio that crossed
``min_speech_ms``. Transcription runs in the ``Transcriber``'s worker, a task made
with the session's ``spawn``: partials while the user speaks (throttled, skipped
rather than queued when ASR is slower than the throttle) and one final per
utterance.

While Murmur speaks, its own voice may reach the microphone. The speaker hands the
echo guard (``voice/echo.py``) the audio it plays (``speech_audio``), and speech that
starts meanwhile is compared with it: speech that is not Murmur's own is a barge-in
at ``min_speech_ms``, like any other (DESIGN §7: ≤ 100 ms after that audio arrives),
while its echo is held for as long as it stays echo, re-judged every 100 ms so that
a user talking over it still cuts it. Only where the guard has no audio to compare
(or the speech is too faint to judge) does ``SpeechStarted`` (with
``during_playback``) wait for ``barge_in_ms_during_playback`` of voiced audio. Held
speech is still transcribed ("stop" works as a command), and the guard drops a
final made of Murmur's own words (``speech_started``/``speech_stopped``).

"Utterance" elsewhere means Murmur's speech; the user's are ``user_utterance``
numbers, counting from 1 per listener.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np
import soxr

from server.events import AudioFormat, Notice
from server.tasks import Spawn
from server.voice.asr.base import ASR_SAMPLE_RATE, ASRBackend
from server.voice.codec import PacketDecoder
from server.voice.echo import EchoGuard, EchoOptions, audio_share
from server.voice.transcriber import (
    EchoDropped,
    FinalJob,
    Transcriber,
    TranscriptFinal,
    TranscriptPartial,
)
from server.voice.vad import (
    SpeechConfirmed,
    SpeechEnd,
    SpeechStart,
    VADEvent,
    VADOptions,
    VoiceActivityDetector,
)

__all__ = [
    "AudioListener",
    "EchoDropped",
    "ListenerEvent",
    "ListenerOptions",
    "SpeechEnded",
    "SpeechStarted",
    "TranscriptFinal",
    "TranscriptPartial",
]


# ------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The user has been speaking long enough to be a barge-in: cut Murmur now."""

    at_ms: int  # capture time of the speech onset
    detected_at_ms: int  # capture time of the audio that made it enough
    user_utterance: int = 0
    # Murmur's voice could be in the microphone at the onset: the echo guard judged it.
    during_playback: bool = False


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """The user stopped (also after speech too short to be a barge-in during playback,
    which had no ``SpeechStarted``); its ``TranscriptFinal`` follows."""

    at_ms: int  # capture time just after the last voiced frame
    user_utterance: int = 0


# ASR failures arrive as a server.events.Notice (code Code.ASR_FAILED).
ListenerEvent = (
    SpeechStarted | SpeechEnded | TranscriptPartial | TranscriptFinal | EchoDropped | Notice
)
Emit = Callable[[ListenerEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ListenerOptions:
    min_speech_ms: int = 300  # voiced audio before SpeechStarted (a cough is shorter)
    # ... while Murmur speaks and the echo guard cannot compare the speech with the
    # audio playing (no audio handed over, or too faint): only a longer run of voice.
    # Echo of a whole sentence outlasts it, so this is a fallback, not the defence;
    # with the audio, speech that is not Murmur's barges in at min_speech_ms.
    barge_in_ms_during_playback: int = 600
    recheck_ms: int = 100  # how often held speech is judged again
    hangover_ms: int = 600  # silence that ends an utterance
    vad_aggressiveness: int = 2  # WebRTC VAD mode 0..3
    partial_interval_ms: int = 700  # of audio between partials; 0 = no partials
    pre_roll_ms: int = 250  # audio kept before the detected onset, for ASR
    max_utterance_ms: int = 30_000  # longer speech keeps its newest part (drops counted)
    max_pending_finals: int = 4  # utterances waiting for ASR; the oldest is dropped
    asr_timeout_s: float = 30.0  # a transcription with no text by then fails (0: no limit)
    language: str | None = None  # passed to ASR; None = the backend's own
    hotwords: str = ""  # words finals are primed with (engine.commands.command_hotwords)
    echo: EchoOptions = field(default_factory=EchoOptions)


def _samples(ms: int) -> int:
    return ASR_SAMPLE_RATE * ms // 1000


class _Ring:
    """16 kHz audio addressed by absolute sample index, bounded, whole chunks dropped."""

    def __init__(self) -> None:
        self._chunks: deque[np.ndarray] = deque()
        self.start = 0  # absolute index of the first kept sample
        self.size = 0
        self.end_ms = 0  # capture time of the newest sample

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

    def capture_ms(self, sample: int) -> int:
        # The newest sample ends at end_ms; earlier ones are earlier by their distance.
        return self.end_ms - (self.end - sample) * 1000 // ASR_SAMPLE_RATE

    def slice(self, a: int, b: int) -> np.ndarray:
        a, b = max(a, self.start), min(b, self.end)
        if b <= a:
            return np.zeros(0, dtype=np.int16)
        joined = np.concatenate(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        return joined[a - self.start : b - self.start].copy()


@dataclass(slots=True)
class _Speech:
    """The user utterance in progress."""

    number: int
    start: int  # absolute sample where its audio (with pre-roll) begins
    onset_ms: int
    during_playback: bool
    announced: bool  # SpeechStarted has been emitted
    last_partial: int  # VAD sample count at the last partial request
    echo: bool | None = None  # the echo guard's last verdict (None: not judged)
    last_check: int = 0  # VAD sample count at that verdict
    echo_at: int | None = None  # where in Murmur's audio the echo was found


class AudioListener:
    def __init__(
        self,
        fmt: AudioFormat,
        asr: ASRBackend,
        emit: Emit,
        options: ListenerOptions | None = None,
        *,
        spawn: Spawn,
        dsp: Executor,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.format = fmt
        self.options = opts = options or ListenerOptions()
        self._emit = emit
        self._dsp = dsp
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
                confirm_ms=opts.barge_in_ms_during_playback,
            )
        )
        self._ring = _Ring()
        self._clock = clock
        self._arrived = clock()  # when the newest packet arrived
        self._echo = EchoGuard(opts.echo, clock=clock)
        self._transcriber = Transcriber(
            asr,
            emit,
            self._echo,
            spawn=spawn,
            language=opts.language,
            hotwords=opts.hotwords,
            max_pending=opts.max_pending_finals,
            timeout_s=opts.asr_timeout_s,
        )
        self._speech: _Speech | None = None
        self._utterances = 0
        self._closed = False
        self._counts = {"packets": 0, "dropped_samples": 0}

    @property
    def stats(self) -> dict[str, int]:
        return {**self._counts, **self._transcriber.stats}

    # ------------------------------------------------------------------ input

    async def feed(self, packet: bytes, capture_time_ms: int) -> None:
        """One inbound packet. Raises ``Recoverable`` for a bad packet; the next one is fine."""
        if self._closed:
            return
        self._arrived = self._clock()
        # feed() calls of one session never overlap, so its codec and VAD state see
        # one caller at a time, even in a DSP pool shared by every session.
        loop = asyncio.get_running_loop()
        pcm, raw_ms, events = await loop.run_in_executor(self._dsp, self._decode, packet)
        self._counts["packets"] += 1
        speech = self._speech
        # While quiet, keep enough for the onset search and the pre-roll.
        limit = _samples(
            self.options.max_utterance_ms
            if speech is not None
            else self.options.pre_roll_ms + self.options.min_speech_ms + 1000
        )
        dropped = self._ring.append(pcm, limit)
        self._ring.end_ms = capture_time_ms + raw_ms  # the end of this packet
        if speech is not None and dropped:
            self._counts["dropped_samples"] += dropped
            speech.start = max(speech.start, self._ring.start)
        confirmed = None
        for event in events:
            match event:
                case SpeechStart():
                    await self._on_start(event)
                case SpeechConfirmed():
                    confirmed = event
                case SpeechEnd():
                    await self._on_end(event)
        await self._held(confirmed)
        self._maybe_want_partial()

    def _decode(self, packet: bytes) -> tuple[np.ndarray, int, list[VADEvent]]:
        """In the DSP thread: packet → 16 kHz PCM, its length in ms, and VAD events."""
        pcm = self._decoder.decode(packet)
        raw_ms = pcm.size * 1000 // self.format.sample_rate_hz
        if self._resampler is not None:
            pcm = self._resampler.resample_chunk(pcm)
        return pcm, raw_ms, self._vad.feed(pcm)

    # ------------------------------------------------------------------ the speaker's hooks

    def speech_started(self, text: str) -> None:
        """Murmur began saying ``text`` (one caption piece of an utterance)."""
        self._echo.speech_started(text)

    def speech_stopped(self) -> None:
        """Murmur's utterance finished or was cut."""
        self._echo.speech_stopped()

    def speech_audio(self, pcm: np.ndarray, sample_rate: int, delay_s: float) -> None:
        """Murmur's ``pcm`` starts to play ``delay_s`` from now."""
        self._echo.speech_audio(pcm, sample_rate, delay_s)

    async def close(self) -> None:
        """Stop listening and transcribing; pending utterances are dropped."""
        self._closed = True
        await self._transcriber.close()

    # ------------------------------------------------------------------ VAD events

    async def _on_start(self, event: SpeechStart) -> None:
        self._utterances += 1
        during = self._echo.playing
        self._speech = speech = _Speech(
            number=self._utterances,
            start=max(event.onset_sample - _samples(self.options.pre_roll_ms), self._ring.start),
            onset_ms=self._ring.capture_ms(event.onset_sample),
            during_playback=during,
            announced=False,
            last_partial=event.detected_sample,
        )
        if during and self._echo.hears_audio:
            await self._judge(speech, event.detected_sample)
        # Without audio to compare, more proof, unless no more than usual is asked for.
        elif not during or self.options.barge_in_ms_during_playback <= self.options.min_speech_ms:
            await self._announce(speech, event.detected_sample)

    async def _held(self, confirmed: SpeechConfirmed | None) -> None:
        """Speech held during playback: barge_in_ms_during_playback of it (``confirmed``)
        is enough unless it is known echo; else it is judged again while they talk."""
        speech = self._speech
        if speech is None or speech.announced or not speech.during_playback:
            return
        if confirmed is not None and not speech.echo:
            await self._announce(speech, confirmed.detected_sample)
        elif self._echo.hears_audio and self._vad.voiced:
            if self._vad.samples - speech.last_check >= _samples(self.options.recheck_ms):
                await self._judge(speech, self._vad.samples)

    async def _judge(self, speech: _Speech, sample: int) -> None:
        """Ask the echo guard whether the newest audio is Murmur's own; if not, barge in."""
        window = _samples(self._echo.options.window_ms)
        mic = self._ring.slice(self._ring.end - _samples(1500), self._ring.end)
        played = self._echo.played_before(self._arrived)
        loop = asyncio.get_running_loop()
        share, at = await loop.run_in_executor(
            self._dsp, audio_share, mic, played, window, speech.echo_at
        )
        speech.last_check = self._vad.samples
        speech.echo = None if share is None else share >= self._echo.options.audio_share
        if speech.echo:
            speech.echo_at = at
        elif speech.echo is False:
            await self._announce(speech, sample)

    async def _announce(self, speech: _Speech, sample: int) -> None:
        speech.announced = True
        await self._emit(
            SpeechStarted(
                speech.onset_ms,
                self._ring.capture_ms(sample),
                speech.number,
                speech.during_playback,
            )
        )

    async def _on_end(self, event: SpeechEnd) -> None:
        speech, self._speech = self._speech, None
        start = speech.start if speech is not None else self._ring.start
        number = speech.number if speech is not None else self._utterances
        # A little trailing audio helps Whisper finish the last word.
        audio = self._ring.slice(start, event.end_sample + _samples(150))
        end_ms = self._ring.capture_ms(event.end_sample)
        onset_ms = speech.onset_ms if speech is not None else end_ms
        self._transcriber.final(
            FinalJob(number, audio, onset_ms, end_ms, self._echo.spoken_words())
        )
        await self._emit(SpeechEnded(end_ms, number))

    def _maybe_want_partial(self) -> None:
        speech = self._speech
        interval = _samples(self.options.partial_interval_ms)
        if speech is None or interval <= 0 or self._closed:
            return
        if self._vad.samples - speech.last_partial < interval:
            return
        speech.last_partial = self._vad.samples
        start = speech.start
        self._transcriber.want_partial(
            speech.number, lambda: self._ring.slice(start, self._ring.end)
        )
