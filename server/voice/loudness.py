"""How loud speech is, and rendering it at a chosen loudness (pure numpy).

Two meters, both honest implementations of their standards:

- ``active_level``: ITU-T P.56 method B (the ``sv56`` speech voltmeter of G.191): a
  two-stage 30 ms envelope, 200 ms hangover, 15 thresholds 6 dB apart and a 15.9 dB
  margin, the crossing interpolated linearly in dB. It ignores pauses, so a sentence
  and the same sentence with a second of silence measure the same.
- ``loudness_lufs``: ITU-R BS.1770-4 integrated loudness of one channel (weight 1.0,
  not dual-mono): the two K-weighting biquads (made for any rate from the standard's
  analog design; at 48 kHz they equal its coefficient table), 400 ms blocks with 75 %
  overlap, the absolute gate at -70 LUFS and the relative gate 10 LU down.

Levels are in dBFS as P.56 counts dBov: ``20·log10(rms)`` with full scale at 1.0 (int16
32768), so a full-scale sine is -3.01 dBFS.

``LevelRenderer`` is the speech-band compressor and limiter the voice profiles use:
band-limit to 100 Hz–8 kHz, a downward compressor (threshold relative to the speech's
own active level, attack/release, a little look-ahead) so that soft consonants end up
closer to the vowels, make-up gain to the target active level, then a look-ahead peak
limiter. Its filters and gains carry over from one chunk of an utterance to the next.
The filters are ``server.voice.filters``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from server.voice.filters import BiquadFilter, highpass, k_weighting, lowpass, one_pole

__all__ = [
    "ActiveLevelMeter",
    "Dynamics",
    "LevelRenderer",
    "SpeechLevel",
    "active_level",
    "dbfs",
    "loudness_lufs",
    "render_level",
]

FULL_SCALE = 32768.0
SILENT_DB = -120.0  # what a signal with no active speech measures


def _float(pcm: np.ndarray) -> np.ndarray:
    if pcm.dtype == np.int16:
        return pcm.astype(np.float64) / FULL_SCALE
    return np.asarray(pcm, dtype=np.float64)


def dbfs(power: float) -> float:
    """Mean square (full scale 1.0) → dB, floored at ``SILENT_DB``."""
    return 10 * math.log10(power) if power > 10 ** (SILENT_DB / 10) else SILENT_DB


def loudness_lufs(pcm: np.ndarray, rate: int) -> float:
    """BS.1770-4 integrated loudness of one channel, in LUFS (``SILENT_DB`` if nothing
    passes the gates). Shorter than one 400 ms block: the whole signal is one block."""
    x = _float(pcm)
    if x.size == 0:
        return SILENT_DB
    for stage in k_weighting(rate):
        x = BiquadFilter(stage)(x)
    block, hop = round(0.4 * rate), round(0.1 * rate)
    if x.size < block:
        z = np.array([np.mean(x * x)])
    else:
        csum = np.concatenate([[0.0], np.cumsum(x * x)])
        starts = np.arange(0, x.size - block + 1, hop)
        z = (csum[starts + block] - csum[starts]) / block
    with np.errstate(divide="ignore"):
        blocks = -0.691 + 10 * np.log10(z)
    gated = z[blocks > -70.0]
    if gated.size == 0:
        return SILENT_DB
    relative = -0.691 + 10 * math.log10(float(np.mean(gated))) - 10.0
    gated = z[(blocks > -70.0) & (blocks > relative)]
    return -0.691 + 10 * math.log10(float(np.mean(gated)))


# ------------------------------------------------------------------ P.56


@dataclass(frozen=True, slots=True)
class SpeechLevel:
    level_db: float  # active speech level, dBFS (dBov)
    activity: float  # the share of samples counted as active speech, 0..1
    rms_db: float  # the plain long-term RMS level, pauses included


_THRESHOLDS = 2.0 ** np.arange(-15, 0)  # one quantising step up to half scale, 6 dB apart
_MARGIN_DB = 15.9


def _trailing_max(x: np.ndarray, width: int) -> np.ndarray:
    """``out[n] = max(x[n-width+1 .. n])`` for ``n ≥ width-1`` (a sparse-table max)."""
    span, m = 1, x
    while span * 2 <= width:
        m = np.maximum(m[span:], m[:-span])  # m[i] now covers x[i .. i+2·span-1]
        span *= 2
    rest = width - span  # two overlapping windows of ``span`` cover ``width``
    return np.maximum(m[rest:], m[: m.size - rest]) if rest else m


class ActiveLevelMeter:
    """P.56 method B over a stream: ``feed`` chunks, read ``level`` at any time.

    A sample counts as active for threshold c when the envelope reached c within the
    hangover before it, i.e. when the envelope's maximum over the trailing 200 ms is
    at least c; one trailing maximum then serves all 15 thresholds."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._g = math.exp(-1 / (rate * 0.03))
        self._hangover = math.ceil(rate * 0.2)
        self._p = 0.0
        self._q = 0.0
        self._tail = np.zeros(self._hangover)  # the envelope's last 200 ms
        self._active = np.zeros(_THRESHOLDS.size, dtype=np.int64)
        self._energy = 0.0
        self._n = 0

    def feed(self, pcm: np.ndarray) -> None:
        x = _float(pcm)
        if x.size == 0:
            return
        g = self._g
        p = one_pole((1 - g) * np.abs(x), g, self._p)
        q = one_pole((1 - g) * p, g, self._q)
        self._p, self._q = float(p[-1]), float(q[-1])
        env = np.concatenate([self._tail, q])
        self._tail = env[-self._hangover :]
        peak = _trailing_max(env, self._hangover + 1)
        # threshold j (c = 2**(j-15)) is reached where floor(log2(peak)) ≥ j - 15
        with np.errstate(divide="ignore"):
            octave = np.floor(np.log2(peak[peak >= _THRESHOLDS[0]])).astype(np.int64) + 15
        counts = np.bincount(np.minimum(octave, _THRESHOLDS.size - 1), minlength=_THRESHOLDS.size)
        self._active += np.cumsum(counts[::-1])[::-1]
        self._energy += float(np.sum(x * x))  # not np.dot: BLAS threads spin under load
        self._n += x.size

    def level(self) -> SpeechLevel:
        rms_db = dbfs(self._energy / self._n) if self._n else SILENT_DB
        a = self._active
        if a[0] == 0 or self._energy <= 0:
            return SpeechLevel(SILENT_DB, 0.0, rms_db)
        with np.errstate(divide="ignore"):
            active_db = 10 * np.log10(self._energy / np.maximum(a, 1))
        thresholds_db = 20 * np.log10(_THRESHOLDS)
        delta = active_db - thresholds_db
        if delta[0] < _MARGIN_DB:
            return SpeechLevel(SILENT_DB, 0.0, rms_db)
        for j in range(1, a.size):
            if a[j] and delta[j] <= _MARGIN_DB:
                # the point on the segment (j-1 → j) where A − C equals the margin
                t = (delta[j - 1] - _MARGIN_DB) / (delta[j - 1] - delta[j])
                level = float(active_db[j - 1] + t * (active_db[j] - active_db[j - 1]))
                return SpeechLevel(level, 10 ** ((rms_db - level) / 10), rms_db)
        # Louder than the top threshold allows to tell: count every sample as active.
        return SpeechLevel(rms_db, 1.0, rms_db)


def active_level(pcm: np.ndarray, rate: int) -> SpeechLevel:
    """The P.56 active speech level of ``pcm`` (int16, or float with full scale 1.0)."""
    meter = ActiveLevelMeter(rate)
    meter.feed(pcm)
    return meter.level()


# ------------------------------------------------------------------ rendering


@dataclass(frozen=True, slots=True)
class Dynamics:
    """The speech-band compressor and limiter (defaults tuned on Piper and espeak-ng)."""

    low_hz: float = 100.0  # band limits: rumble and hiss are not speech
    high_hz: float = 8000.0
    threshold_db: float = -12.0  # relative to the speech's active level: louder is compressed
    ratio: float = 3.0
    attack_ms: float = 5.0
    release_ms: float = 80.0
    lookahead_ms: float = 5.0
    ceiling_db: float = -1.0  # the limiter's sample-peak ceiling, dBFS
    limiter_release_ms: float = 50.0


_HOP_S = 0.001  # gains are computed per millisecond and interpolated between
_WINDOW_S = 0.010  # the compressor's level detector: RMS over 10 ms


class LevelRenderer:
    """Renders one utterance's chunks at ``target_db`` active level, state carried over.

    Each chunk (a clause) is brought to the target by itself: an even loudness from
    clause to clause, and the utterance as a whole measures the target too. Filters,
    compressor and limiter state carry over; a new sample rate starts afresh.
    """

    def __init__(
        self, target_db: float, *, compress: bool = True, dynamics: Dynamics = Dynamics()
    ) -> None:
        self.target_db = target_db
        self.compress = compress
        self.dynamics = dynamics
        self.rate = 0
        self._bands: list[BiquadFilter] = []
        self._comp_db = 0.0  # the compressor's smoothed gain, dB
        self._limit = 1.0  # the limiter's gain

    def _start(self, rate: int) -> None:
        d = self.dynamics
        self.rate = rate
        self._bands = []
        if self.compress:
            self._bands.append(BiquadFilter(highpass(d.low_hz, rate)))
            if d.high_hz < 0.45 * rate:
                self._bands.append(BiquadFilter(lowpass(d.high_hz, rate)))

    def process(self, pcm: np.ndarray, rate: int) -> np.ndarray:
        """int16 in, int16 out, same length and rate."""
        if rate != self.rate:
            self._start(rate)
        x = _float(pcm)
        if x.size == 0:
            return np.zeros(0, dtype=np.int16)
        for band in self._bands:
            x = band(x)
        if self.compress:
            x = x * self._compressor_gain(x, active_level(x, rate).level_db)
        level = active_level(x, rate).level_db
        if level > SILENT_DB:
            x = x * 10 ** ((self.target_db - level) / 20)
        x = x * self._limiter_gain(x)
        ceiling = 10 ** (self.dynamics.ceiling_db / 20)
        y = np.clip(x, -ceiling, ceiling) * FULL_SCALE  # the clip catches what hops miss
        return np.round(y).astype(np.int16)

    def _hops(self, n: int) -> tuple[int, np.ndarray]:
        hop = max(1, round(self.rate * _HOP_S))
        return hop, np.arange(0, n, hop)

    def _to_samples(self, gains: np.ndarray, hop: int, n: int) -> np.ndarray:
        centres = np.arange(gains.size) * hop + hop / 2
        return np.interp(np.arange(n), centres, gains)

    def _compressor_gain(self, x: np.ndarray, level_db: float) -> np.ndarray:
        d = self.dynamics
        hop, starts = self._hops(x.size)
        if level_db <= SILENT_DB:
            return np.ones(x.size)
        half = max(1, round(self.rate * _WINDOW_S / 2))
        csum = np.concatenate([[0.0], np.cumsum(x * x)])
        centres = np.minimum(starts + hop // 2, x.size - 1)
        lo, hi = np.maximum(centres - half, 0), np.minimum(centres + half, x.size)
        with np.errstate(divide="ignore"):
            det = 10 * np.log10((csum[hi] - csum[lo]) / np.maximum(hi - lo, 1) + 1e-12)
        over = det - (level_db + d.threshold_db)
        wanted = -np.maximum(over, 0.0) * (1 - 1 / d.ratio)
        ahead = round(d.lookahead_ms / 1000 / _HOP_S)  # act a little before the onset
        if ahead:
            wanted = np.concatenate([wanted[ahead:], np.full(min(ahead, wanted.size), wanted[-1])])
        attack = math.exp(-_HOP_S / (d.attack_ms / 1000))
        release = math.exp(-_HOP_S / (d.release_ms / 1000))
        out = np.empty(wanted.size)
        g = self._comp_db
        for i, w in enumerate(wanted.tolist()):  # ~1000 steps a second of audio
            k = attack if w < g else release
            g = k * g + (1 - k) * w
            out[i] = g
        self._comp_db = g
        return 10 ** (self._to_samples(out, hop, x.size) / 20)

    def _limiter_gain(self, x: np.ndarray) -> np.ndarray:
        d = self.dynamics
        ceiling = 10 ** (d.ceiling_db / 20)
        hop, starts = self._hops(x.size)
        peaks = np.maximum.reduceat(np.abs(x), starts)
        need = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12))
        if need.min() >= 1.0 and self._limit >= 1.0:
            return np.ones(x.size)
        ahead = max(1, round(d.lookahead_ms / 1000 / _HOP_S))
        padded = np.concatenate([need, np.ones(ahead + 1)])
        window = np.min(np.lib.stride_tricks.sliding_window_view(padded, ahead + 2), axis=1)
        need = np.minimum(need, window[: need.size])  # reach the gain before the peak
        release = math.exp(-_HOP_S / (d.limiter_release_ms / 1000))
        out = np.empty(need.size)
        g = self._limit
        for i, w in enumerate(need.tolist()):
            g = w if w < g else release * g + (1 - release) * w  # instant attack
            out[i] = g
        self._limit = g
        return self._to_samples(out, hop, x.size)


def render_level(
    pcm: np.ndarray, rate: int, target_db: float, *, compress: bool = True
) -> np.ndarray:
    """``pcm`` (int16) at ``target_db`` active speech level (P.56), compressed in the
    speech band unless ``compress`` is False (then a plain gain and the limiter)."""
    return LevelRenderer(target_db, compress=compress).process(pcm, rate)
