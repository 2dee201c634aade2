"""The ASR interface.

A backend implements one private, blocking method, ``_transcribe``. The public
``transcribe`` is the same for all: it runs ``_transcribe`` in the backend's
executor (the app's, or its own when built standalone), so a model never runs on
the event loop, and the backend consumes any lazy result (faster-whisper's segment
generator) inside that thread.

A backend that can be primed with the words it should expect (``hotwords``, e.g. the
voice commands) says so in its capabilities; the others are never handed them.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from server.tasks import WorkerPool

__all__ = ["ASR_SAMPLE_RATE", "ASRBackend", "ASRCapabilities", "ASRError", "Transcription"]

ASR_SAMPLE_RATE = 16000


class ASRError(Exception):
    """A transcription failed; the listener reports it as a ``Notice`` and goes on."""


@dataclass(frozen=True, slots=True)
class ASRCapabilities:
    name: str
    device: str = "cpu"
    languages: tuple[str, ...] = ("en",)  # empty = multilingual
    workers: int = 1  # transcriptions that may run at once (sessions share a backend)
    hotwords: bool = False  # _transcribe takes ``hotwords``


@dataclass(frozen=True, slots=True)
class Transcription:
    """What ``_transcribe`` may return instead of bare text."""

    text: str
    # The backend judged the text its hotwords written for noise and dropped it (text "").
    prompt_echo: bool = False


class ASRBackend(ABC):
    def __init__(self, capabilities: ASRCapabilities, executor: Executor | None = None) -> None:
        """``executor``: the app's ASR pool, ``capabilities.workers`` threads; None makes
        (and owns) one."""
        self.capabilities = capabilities
        self._pool = WorkerPool(
            executor, prefix=f"asr-{capabilities.name}", workers=max(1, capabilities.workers)
        )

    @property
    def name(self) -> str:
        return self.capabilities.name

    async def transcribe(
        self, pcm16k: np.ndarray, *, partial: bool, language: str | None = None, hotwords: str = ""
    ) -> str:
        """Text for int16 mono audio at 16 kHz. ``partial`` asks for speed over accuracy;
        ``hotwords`` are words to expect (ignored by a backend without the capability)."""
        result = await self.transcription(
            pcm16k, partial=partial, language=language, hotwords=hotwords
        )
        return result.text

    async def transcription(
        self, pcm16k: np.ndarray, *, partial: bool, language: str | None = None, hotwords: str = ""
    ) -> Transcription:
        """``transcribe``, and whether the backend dropped what it heard (``prompt_echo``)."""
        if pcm16k.size == 0:
            return Transcription("")

        def run() -> str | Transcription:
            if hotwords and self.capabilities.hotwords:
                return self._transcribe(pcm16k, partial, language, hotwords)
            return self._transcribe(pcm16k, partial, language)

        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._pool.executor, run)
        except ASRError:
            raise
        except Exception as e:
            raise ASRError(f"{self.name} failed to transcribe: {type(e).__name__}: {e}") from e
        if isinstance(result, Transcription):
            return Transcription(result.text.strip(), result.prompt_echo)
        return Transcription(result.strip())

    @abstractmethod
    def _transcribe(
        self, pcm16k: np.ndarray, partial: bool, language: str | None, hotwords: str = ""
    ) -> str | Transcription:
        """Blocking; runs in the backend's executor. ``hotwords`` is passed only to a
        backend whose capabilities say ``hotwords``."""

    def warmup(self) -> None:
        """Run one tiny transcription so the first user does not pay for lazy set-up."""
        self._transcribe(np.zeros(ASR_SAMPLE_RATE // 2, dtype=np.int16), True, None)

    def close(self) -> None:
        """An own pool is shut down; the app's is left to the app."""
        self._pool.close()

    @abstractmethod
    def describe(self) -> str:
        """One line for logs."""
