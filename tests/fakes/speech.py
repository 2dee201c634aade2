"""Speech out (TTS backends) and speech in (the ASR backend, and a whole listener)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import numpy as np

from server.voice.asr.base import ASRBackend, ASRCapabilities
from server.voice.tts.base import PcmChunk, TTSBackend, TTSCapabilities, TTSError, VoiceOptions

__all__ = ["EmitRecorder", "FakeASR", "FakeTTS", "InstantTTS", "ScriptedListener"]


class InstantTTS(TTSBackend):
    """A TTS backend that costs no time: silence, a quarter second a word, per clause.

    Non-blocking, so it runs no thread (the session harness's clock never waits on it).
    """

    SECONDS_PER_WORD = 0.25

    def __init__(self, sample_rate: int = 16000) -> None:
        super().__init__(
            TTSCapabilities(name="instant", offline=True, sample_rate=sample_rate, blocking=False)
        )
        self.spoken: list[str] = []

    async def _synthesize_async(self, clause: str, options: VoiceOptions) -> PcmChunk:
        self.spoken.append(clause)
        n = int(len(clause.split()) * self.SECONDS_PER_WORD * self.capabilities.sample_rate)
        return PcmChunk(np.zeros(n, dtype=np.int16), self.capabilities.sample_rate, clause)

    def describe(self) -> str:
        return "instant (silence, for tests)"


class FakeTTS(TTSBackend):
    """A TTS backend that speaks a quiet tone per clause and fails on demand.

    ``fail_at_clause``: the clause index that raises ``TTSError`` (0 = before any
    audio); ``hang``: never produce audio (a stuck network voice); ``broken``: fail
    every call until ``broken`` is set back to False; ``blocking``: synthesise in the
    backend's thread, as local engines do (``hang`` is for the async path only).
    ``closes`` counts the calls of ``close``.
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
        self.closes = 0
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

    def close(self) -> None:
        self.closes += 1
        super().close()


class FakeASR(ASRBackend):
    """An ASR backend that hears ``text`` in every call; ``gate`` (a threading.Event)
    holds each call, and it counts how many run at once and on which threads."""

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

    def _transcribe(
        self, pcm16k: np.ndarray, partial: bool, language: str | None, hotwords: str = ""
    ) -> str:
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


class ScriptedListener:
    """A session's audio listener whose 'audio' packets say what the user did.

    ``b"speech"`` is speech onset (``SpeechStarted``), ``b"final:TEXT"`` a final
    transcript. It records what the speaker told its echo guard.
    """

    def __init__(self, emit: Any) -> None:
        self._emit = emit
        self.heard_murmur: list[str] = []  # speech_started texts
        self.stopped = 0
        self.closed = False
        self._n = 0

    @classmethod
    def factory(cls, made: list[ScriptedListener]) -> Any:
        def make(fmt: Any, emit: Any, **_: Any) -> ScriptedListener:
            made.append(cls(emit))
            return made[-1]

        return make

    async def feed(self, packet: bytes, capture_time_ms: int) -> None:
        from server.voice.listener import SpeechStarted, TranscriptFinal

        if packet == b"speech":
            self._n += 1
            await self._emit(SpeechStarted(capture_time_ms, capture_time_ms, self._n))
        elif packet.startswith(b"final:"):
            await self._emit(TranscriptFinal(packet[6:].decode(), self._n))

    def speech_started(self, text: str) -> None:
        self.heard_murmur.append(text)

    def speech_stopped(self) -> None:
        self.stopped += 1

    async def close(self) -> None:
        self.closed = True


class EmitRecorder:
    """A listener's ``emit`` (the session's side): keeps events, and lets a test wait for a type."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self._changed = asyncio.Event()

    async def __call__(self, event: object) -> None:
        self.events.append(event)
        self._changed.set()

    def types(self) -> list[type]:
        return [type(e) for e in self.events]

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, kind: type, count: int = 1) -> None:
        async with asyncio.timeout(20):
            while len(self.of(kind)) < count:
                self._changed.clear()
                await self._changed.wait()
