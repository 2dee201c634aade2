"""The loudness meters and the speech-band renderer, on synthetic signals of known level."""

from __future__ import annotations

import math

import numpy as np
import pytest

from server.voice.filters import Biquad, BiquadFilter, highpass, k_weighting, lowpass, one_pole
from server.voice.loudness import (
    SILENT_DB,
    ActiveLevelMeter,
    Dynamics,
    LevelRenderer,
    active_level,
    loudness_lufs,
    render_level,
)

RATE = 16000
RNG = np.random.default_rng(7)


def sine(hz: float, seconds: float, amplitude: float, rate: int = RATE) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * hz * np.arange(round(seconds * rate)) / rate)


def db(amplitude_rms: float) -> float:
    return 20 * math.log10(amplitude_rms)


def pcm16(x: np.ndarray) -> np.ndarray:
    return np.round(x * 32768).clip(-32768, 32767).astype(np.int16)


def bursts(gap_s: float, count: int = 5, on_s: float = 1.0) -> np.ndarray:
    tone = sine(500, on_s, 0.1)
    return np.concatenate([np.concatenate([tone, np.zeros(round(gap_s * RATE))])] * count)


# ------------------------------------------------------------------ filters


def _direct_one_pole(x: np.ndarray, a: complex, y0: complex) -> np.ndarray:
    out, y = np.zeros(x.size, dtype=complex), y0
    for i, v in enumerate(x):
        y = a * y + v
        out[i] = y
    return out


@pytest.mark.parametrize("a", [0.5, 0.999, 0.9 + 0.3j])
def test_one_pole_equals_the_recurrence(a):
    x = RNG.normal(size=3000)
    assert np.allclose(one_pole(x, a, 0.7), _direct_one_pole(x, a, 0.7), atol=1e-9)


def _direct_biquad(x: np.ndarray, q: Biquad) -> np.ndarray:
    y = np.zeros_like(x)
    x1 = x2 = y1 = y2 = 0.0
    for i, v in enumerate(x):
        y[i] = q.b0 * v + q.b1 * x1 + q.b2 * x2 - q.a1 * y1 - q.a2 * y2
        x2, x1, y2, y1 = x1, v, y1, y[i]
    return y


@pytest.mark.parametrize(
    "biquad",
    [highpass(100, RATE), lowpass(7000, RATE), *k_weighting(22050)],
    ids=["highpass", "lowpass", "k-shelf", "k-highpass (double pole)"],
)
def test_a_biquad_streamed_in_chunks_equals_direct_form(biquad):
    x = RNG.normal(size=6000)
    f = BiquadFilter(biquad)
    chunked = np.concatenate([f(x[:1001]), f(x[1001:1002]), f(x[1002:])])
    expected = _direct_biquad(x, biquad)
    assert np.max(np.abs(chunked - expected)) < 1e-9 * np.max(np.abs(expected))


def test_k_weighting_at_48k_is_the_bs1770_table():
    shelf, hp = k_weighting(48000)
    table = (
        (
            1.53512485958697,
            -2.69169618940638,
            1.19839281085285,
            -1.69065929318241,
            0.73248077421585,
        ),
        (1.0, -2.0, 1.0, -1.99004745483398, 0.99007225036621),
    )
    for stage, expected in zip((shelf, hp), table, strict=True):
        got = (stage.b0, stage.b1, stage.b2, stage.a1, stage.a2)
        assert got == pytest.approx(expected, abs=1e-8)


# ------------------------------------------------------------------ BS.1770


@pytest.mark.parametrize(("rate", "tolerance"), [(48000, 0.01), (22050, 0.05), (16000, 0.05)])
def test_a_full_scale_997_hz_sine_is_minus_3_01_lufs(rate, tolerance):
    """The standard's own calibration: 0 dBFS at 997 Hz in one channel reads -3.01 (at
    other rates the bilinear transform warps the shelf by a few hundredths of a dB)."""
    assert loudness_lufs(sine(997, 5, 1.0, rate), rate) == pytest.approx(-3.01, abs=tolerance)
    assert loudness_lufs(sine(997, 5, 0.1, rate), rate) == pytest.approx(-23.01, abs=tolerance)


def test_lufs_gates_silence_out_and_k_weights_the_spectrum():
    tone = sine(997, 3, 0.1)
    padded = np.concatenate([np.zeros(5 * RATE), tone, np.zeros(5 * RATE)])
    # Silent blocks fail the absolute gate; the 3 + 3 blocks straddling the tone's edges
    # (75, 50 and 25 % of a full block's energy) pass the relative one and count.
    full = 27  # 400 ms blocks every 100 ms inside 3 s
    expected = loudness_lufs(tone, RATE) + 10 * math.log10((full + 3) / (full + 6))
    assert loudness_lufs(padded, RATE) == pytest.approx(expected, abs=0.01)
    # The shelf lifts the top (+4 dB), the RLB high-pass cuts the bottom.
    assert loudness_lufs(sine(6000, 3, 0.1), RATE) > loudness_lufs(tone, RATE) + 3
    assert loudness_lufs(sine(30, 3, 0.1), RATE) < loudness_lufs(tone, RATE) - 3
    assert loudness_lufs(np.zeros(RATE), RATE) == SILENT_DB


# ------------------------------------------------------------------ P.56


def test_the_active_level_of_a_steady_signal_is_its_rms():
    assert active_level(sine(1000, 3, 0.1), RATE).level_db == pytest.approx(
        db(0.1 / 2**0.5), abs=0.1
    )
    noise = RNG.normal(0, 0.05, 3 * RATE)
    level = active_level(pcm16(noise), RATE)
    assert level.level_db == pytest.approx(db(0.05), abs=0.2)
    assert level.activity > 0.98


def test_pauses_do_not_lower_the_active_level():
    """Plain RMS falls with every second of silence; the active level does not."""
    dense, sparse = active_level(bursts(1.0), RATE), active_level(bursts(4.0), RATE)
    assert dense.level_db == pytest.approx(sparse.level_db, abs=0.05)
    assert dense.rms_db - sparse.rms_db > 3.5
    # Within a dB of the tone itself: 200 ms of hangover per burst count as active.
    assert dense.level_db == pytest.approx(db(0.1 / 2**0.5), abs=1.1)
    # The same active time per burst (the tone, the envelope's decay, the hangover):
    assert dense.activity * 2.0 == pytest.approx(sparse.activity * 5.0, rel=1e-3)
    assert 1.2 < dense.activity * 2.0 < 1.35


def test_the_meter_streams_and_silence_has_no_level():
    x = pcm16(bursts(1.5, count=3))
    meter = ActiveLevelMeter(RATE)
    for part in np.array_split(x, 7):
        meter.feed(part)
    assert meter.level() == active_level(x, RATE)
    silent = active_level(np.zeros(RATE, dtype=np.int16), RATE)
    assert silent.level_db == SILENT_DB and silent.activity == 0.0


# ------------------------------------------------------------------ rendering


@pytest.mark.parametrize("target", [-32.0, -20.0])
def test_render_level_reaches_the_target(target):
    for signal in (bursts(0.7), RNG.normal(0, 0.02, 2 * RATE), sine(300, 2, 0.5)):
        out = render_level(pcm16(signal), RATE, target)
        assert out.dtype == np.int16 and out.size == signal.size
        assert active_level(out, RATE).level_db == pytest.approx(target, abs=0.3)


def test_the_limiter_holds_the_ceiling():
    clicks = RNG.normal(0, 0.01, 2 * RATE)
    clicks[:: RATE // 4] = 0.9  # 40 dB above the rest: make-up gain drives them far over
    out = render_level(pcm16(clicks), RATE, -12.0)
    assert np.abs(out).max() <= 32768 * 10 ** (Dynamics().ceiling_db / 20) + 1


def _syllables(consonant_db: float) -> tuple[np.ndarray, list[slice], list[slice]]:
    """Noise "consonants" ``consonant_db`` below tone "vowels", like soft speech."""
    vowel = sine(220, 0.12, 0.3)
    cons_n, pause = round(0.05 * RATE), np.zeros(round(0.03 * RATE))
    parts, cons, vowels, at = [], [], [], 0
    for _ in range(20):
        c = RNG.normal(0, 0.3 / 2**0.5 * 10 ** (consonant_db / 20), cons_n)
        parts += [c, vowel, pause]
        cons.append(slice(at + 10, at + cons_n - 10))
        vowels.append(slice(at + cons_n + 200, at + cons_n + vowel.size - 200))
        at += cons_n + vowel.size + pause.size
    return np.concatenate(parts), cons, vowels


def _gap_db(y: np.ndarray, cons: list[slice], vowels: list[slice]) -> float:
    y = y.astype(np.float64)
    c = np.concatenate([y[s] for s in cons])
    v = np.concatenate([y[s] for s in vowels])
    return 10 * math.log10(np.mean(c * c) / np.mean(v * v))


def test_compression_brings_soft_consonants_closer_to_the_vowels():
    x, cons, vowels = _syllables(-20.0)
    before = _gap_db(pcm16(x), cons, vowels)
    compressed = _gap_db(render_level(pcm16(x), RATE, -32.0), cons, vowels)
    plain = _gap_db(render_level(pcm16(x), RATE, -32.0, compress=False), cons, vowels)
    assert before == pytest.approx(-19.4, abs=1.0)
    assert compressed - before > 5.0  # ~6.6 dB closer at 3:1 above -12 dB
    assert plain == pytest.approx(before, abs=0.3)


def test_the_band_is_limited_to_speech():
    mix = pcm16(sine(30, 3, 0.2) + sine(1000, 3, 0.2))
    spectrum = np.abs(np.fft.rfft(render_level(mix, RATE, -26.0)[RATE : 2 * RATE]))
    assert 20 * math.log10(spectrum[30] / spectrum[1000]) < -18


def test_a_renderer_carries_its_state_across_chunks():
    """Clause by clause or all at once: the same waveform, no step at the joins."""
    x = pcm16(sine(300, 3, 0.2))
    whole = LevelRenderer(-26.0).process(x, RATE)
    r = LevelRenderer(-26.0)
    parts = np.concatenate([r.process(part, RATE) for part in np.array_split(x, 3)])
    peak = np.abs(whole).max()
    assert np.abs(whole[800:].astype(int) - parts[800:]).max() < 0.01 * peak
    assert r.process(np.zeros(0, dtype=np.int16), RATE).size == 0
