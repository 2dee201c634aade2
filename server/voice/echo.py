"""The echo guard: is this Murmur hearing its own voice?

Open-ear speakers on glasses leak Murmur's voice into the microphone. Bridges
should capture with the phone's acoustic echo cancellation on (Android
``VOICE_COMMUNICATION`` source / iOS ``.voiceChat`` mode); that is the first line of
defence. The guard is the second, twice over:

- **Audio, for barge-in.** The speaker hands over each chunk of audio it plays
  (``speech_audio``) with when it will play. Speech that starts while that audio
  may be reaching the microphone is compared with it (``audio_share``): the
  microphone's newest 300 ms against every alignment of what played in the
  ``max_delay_ms`` before (network both ways, the bridge's buffer, Bluetooth), as a
  normalised cross-correlation of the waveforms, band-limited and pre-emphasised so
  that speech's low-frequency bulk does not make any two voices look alike. Echo
  is Murmur's own waveform, delayed, filtered and quieter: one alignment explains
  most of it. A user's voice explains nothing of it, so the share falls with the
  user's share of the microphone's signal (noise floor removed). Piper's speech
  through Opus both ways, a small speaker, 40–1200 ms of delay, 6–22 dB of loss,
  reverberation and hiss never scored below 0.37 as echo; an espeak user over it
  scores under 0.1 once they are clearly the louder (tests/test_voice_barge_in.py).
- **Words, for transcripts.** The speaker says what Murmur begins to say
  (``speech_started``, once per caption piece) and when it stops
  (``speech_stopped``); a transcript made mostly of those words is not taken as
  the user's. Words keep counting for ``tail_s`` after they were replaced or
  stopped, because the microphone's audio reaches ASR late.
"""

from __future__ import annotations

import functools
import itertools
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from server.voice.codec import resample

__all__ = ["EchoGuard", "EchoOptions", "audio_share", "echo_overlap", "words"]

_WORD = re.compile(r"\w+(?:'\w+)?")
RATE = 16000  # the listener's rate; the guard keeps Murmur's audio at it too
_FRAME = RATE // 50  # 20 ms


def words(text: str) -> list[str]:
    """Lower-case words of ``text``, as the guard compares them."""
    return _WORD.findall(text.lower())


def echo_overlap(transcript: str, spoken_words: frozenset[str] | set[str]) -> float:
    """Share of the transcript's words that Murmur itself was saying."""
    heard = words(transcript)
    if not heard:
        return 0.0
    return sum(w in spoken_words for w in heard) / len(heard)


@dataclass(frozen=True, slots=True)
class EchoOptions:
    overlap: float = 0.6  # share of transcript words found in Murmur's speech
    min_words: int = 2  # shorter transcripts ("stop") are never called echo
    tail_s: float = 4.0  # how long after Murmur stops its words still count
    # Speech is echo when Murmur's audio explains at least this share of it: a user
    # about 8 dB louder than the echo at the microphone is not echo.
    audio_share: float = 0.15
    max_delay_ms: int = 1500  # from the speaker's playout estimate to the listener
    window_ms: int = 300  # the newest microphone audio compared


class EchoGuard:
    """What Murmur is saying and playing, and has just said, on the clock given."""

    def __init__(
        self, options: EchoOptions | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.options = options or EchoOptions()
        self._clock = clock
        self._current: frozenset[str] | None = None  # None: Murmur is quiet
        self._recent: deque[tuple[float, frozenset[str]]] = deque(maxlen=8)  # (until, words)
        self._played: deque[tuple[float, np.ndarray]] = deque()  # (plays at, 16 kHz pcm)
        self.hears_audio = False  # the speaker hands its audio over: judge by it

    @property
    def speaking(self) -> bool:
        """Murmur is saying something now."""
        return self._current is not None

    @property
    def playing(self) -> bool:
        """Murmur's voice may be reaching the microphone: it speaks, or audio it
        played is still within ``max_delay_ms``."""
        if self._current is not None:
            return True
        if not self._played:
            return False
        at, pcm = self._played[-1]
        return at + pcm.size / RATE + self.options.max_delay_ms / 1000 >= self._clock()

    def speech_started(self, text: str) -> None:
        """Murmur began saying ``text`` (the next caption piece replaces the last one)."""
        self._retire()
        self._current = frozenset(words(text))

    def speech_stopped(self) -> None:
        """The utterance finished or was cut."""
        self._retire()
        self._current = None

    def speech_audio(self, pcm: np.ndarray, sample_rate: int, delay_s: float) -> None:
        """Murmur's ``pcm`` starts to play ``delay_s`` from now."""
        self.hears_audio = True
        now = self._clock()
        self._played.append((now + delay_s, resample(pcm, sample_rate, RATE)))
        horizon = now - (self.options.max_delay_ms + 2 * self.options.window_ms) / 1000
        while self._played and self._played[0][0] + self._played[0][1].size / RATE < horizon:
            self._played.popleft()

    def played_before(self, end: float) -> np.ndarray:
        """What played (silence where nothing did) from ``max_delay_ms`` + ``window_ms``
        before ``end`` to a little after it (the speaker's estimate runs early)."""
        o = self.options
        start = end - (o.max_delay_ms + o.window_ms) / 1000
        out = np.zeros(round((end + 0.1 - start) * RATE), dtype=np.int16)
        for at, pcm in self._played:
            a = round((at - start) * RATE)
            lo, hi = max(a, 0), min(a + pcm.size, out.size)
            if hi > lo:
                out[lo:hi] = pcm[lo - a : hi - a]
        return out

    def spoken_words(self) -> frozenset[str]:
        """Every word that counts as echo now: the piece being said and the tail."""
        now = self._clock()
        out: set[str] = set(self._current or ())
        for until, spoken in self._recent:
            if until >= now:
                out |= spoken
        return frozenset(out)

    def check(self, text: str, spoken: frozenset[str]) -> tuple[bool, float]:
        """(is ``text`` echo of ``spoken``, the overlap)."""
        overlap = echo_overlap(text, spoken)
        long_enough = len(words(text)) >= self.options.min_words
        return overlap >= self.options.overlap and long_enough, overlap

    def _retire(self) -> None:
        if self._current is not None:
            self._recent.append((self._clock() + self.options.tail_s, self._current))


# ------------------------------------------------------------------ the audio comparison


def audio_share(
    mic: np.ndarray, played: np.ndarray, window: int, near: int | None = None
) -> tuple[float | None, int]:
    """How much of the newest ``window`` samples of ``mic`` is ``played``: 1.0 is pure
    echo, near 0 a voice of its own; and the alignment that explains most of it
    (an offset into ``played``: a delay, stable from call to call).

    Judged per third of the window at that alignment and at ``near`` (where echo was
    found before), and the most echo-like third counts: a cough or an "mm-hm" over
    the echo must not pass for the user, only a window that is theirs throughout.
    ``mic`` is the microphone's recent audio (its quietest frames give the noise
    floor); the share is None when fewer than two thirds stand 3 dB clear of it.
    Pure numpy: it runs in the DSP pool.
    """
    m = _whiten(mic)
    frames = m[: m.size // _FRAME * _FRAME].reshape(-1, _FRAME)
    # The noise floor per sample: the quietest frames, and never below -60 dBFS.
    noise = max(float(np.percentile(np.square(frames).sum(1), 10)) / _FRAME, 32.768**2)
    w = m[-window:]
    r = _whiten(played)
    if r.size < window:
        return 0.0, 0
    n = _fast_len(r.size + window)
    cc = np.fft.irfft(np.fft.rfft(r, n) * np.conj(np.fft.rfft(w, n)), n)[: r.size - window + 1]
    c2 = np.concatenate([[0.0], np.cumsum(r * r)])
    er = c2[window:] - c2[:-window]
    at = int(np.argmax(cc / np.sqrt(np.maximum(er, _floor(er, window)))))
    shares = []
    for a, b in itertools.pairwise((0, window // 3, 2 * window // 3, window)):
        wk = w[a:b]
        em = float(wk @ wk)
        signal = 1.0 - noise * (b - a) / em if em > 0 else 0.0
        if signal < 0.5:  # within 3 dB of the noise floor
            continue
        ncc = max(_ncc_near(r, wk, c + a, em) for c in (at, near) if c is not None)
        shares.append(min(ncc**2 / signal, 1.0))
    return (max(shares) if len(shares) >= 2 else None), at


def _ncc_near(r: np.ndarray, w: np.ndarray, at: int, ew: float, slack: int = 320) -> float:
    """Best normalised correlation of ``w`` with ``r`` within ``slack`` of ``at``."""
    lo, hi = max(at - slack, 0), min(at + slack + w.size, r.size)
    if hi - lo < w.size:
        return 0.0
    seg = r[lo:hi]
    cc = np.correlate(seg, w, mode="valid")
    c2 = np.concatenate([[0.0], np.cumsum(seg * seg)])
    er = c2[w.size :] - c2[: -w.size]
    return float(np.clip(np.max(cc / np.sqrt(np.maximum(er, _floor(er, w.size)) * ew)), 0, 1))


def _floor(energy: np.ndarray, n: int) -> float:
    # Where nothing played, rounding must not pass for a match.
    return max(float(energy.max()) * 1e-4, float(n))


def _whiten(pcm: np.ndarray) -> np.ndarray:
    """200–4000 Hz, pre-emphasised (0.9): the band a glasses speaker plays and the
    microphone hears well, tilted so that formants, not the bulk below, decide."""
    if pcm.size == 0:
        return np.zeros(0)
    n = _fast_len(pcm.size)
    return np.fft.irfft(np.fft.rfft(pcm.astype(np.float64), n) * _weights(n), n)[: pcm.size]


@functools.cache
def _weights(n: int) -> np.ndarray:
    f = np.fft.rfftfreq(n, 1 / RATE)
    return np.abs(1 - 0.9 * np.exp(-2j * np.pi * f / RATE)) * ((f >= 200) & (f <= 4000))


def _fast_len(n: int) -> int:
    # A multiple of 1024 (a handful of sizes for the cache), no longer than it needs.
    return -(-n // 1024) * 1024
