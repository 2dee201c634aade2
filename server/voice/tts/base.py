"""The TTS interface.

A backend implements one private method, ``_synthesize``, which may block (local
engines) or await (network engines). The public ``stream`` method is the same for
all: blocking backends run in the backend's own executor and the whole clause is
synthesised inside that thread, so no model ever runs on the event loop.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

__all__ = ["PcmChunk", "TTSBackend", "TTSCapabilities", "TTSError", "VoiceOptions", "split_clauses"]


class TTSError(Exception):
    """A backend could not synthesise; the fallback chain moves on."""


@dataclass(frozen=True, slots=True)
class VoiceOptions:
    language: str = "en"
    voice: str = ""  # backend-specific; empty = the backend's default for the language
    rate: float = 1.0  # 1.0 = the voice's normal pace; guidance is calm, slightly slow
    volume: float = 0.8  # 0..1 gain


@dataclass(frozen=True, slots=True)
class TTSCapabilities:
    name: str
    offline: bool
    sample_rate: int
    languages: tuple[str, ...] = ("en",)
    blocking: bool = True  # _synthesize blocks: run it in the executor


@dataclass(frozen=True, slots=True)
class PcmChunk:
    pcm: np.ndarray  # int16 mono
    sample_rate: int


class TTSBackend(ABC):
    def __init__(self, capabilities: TTSCapabilities) -> None:
        self.capabilities = capabilities
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"tts-{capabilities.name}")

    @property
    def name(self) -> str:
        return self.capabilities.name

    async def stream(self, text: str, options: VoiceOptions) -> AsyncGenerator[PcmChunk, None]:
        """Audio for ``text``, clause by clause, as each clause is ready."""
        loop = asyncio.get_running_loop()
        for clause in split_clauses(text):
            try:
                if self.capabilities.blocking:
                    chunk = await loop.run_in_executor(
                        self._executor, _collect, self._synthesize, clause, options
                    )
                else:
                    chunk = await self._synthesize_async(clause, options)
            except TTSError:
                raise
            except Exception as e:  # an engine's own error: the chain (or session) copes
                raise TTSError(f"{self.name} failed: {type(e).__name__}: {e}") from e
            if chunk.pcm.size:
                yield chunk

    def _synthesize(self, clause: str, options: VoiceOptions) -> Iterator[PcmChunk]:
        raise NotImplementedError

    async def _synthesize_async(self, clause: str, options: VoiceOptions) -> PcmChunk:
        raise NotImplementedError

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    @abstractmethod
    def describe(self) -> str:
        """One line for logs and `murmur doctor`."""


def _collect(fn, clause: str, options: VoiceOptions) -> PcmChunk:  # type: ignore[no-untyped-def]
    # Runs in the backend's thread: the generator is consumed here, never on the loop.
    parts = list(fn(clause, options))
    if not parts:
        return PcmChunk(np.zeros(0, dtype=np.int16), 0)
    rate = parts[0].sample_rate
    return PcmChunk(np.concatenate([p.pcm for p in parts]), rate)


_CLAUSE_END = ".!?;:,"


def split_clauses(text: str, min_chars: int = 12) -> list[str]:
    """Split at clause punctuation so the first clause can be spoken early.

    Very short pieces ("Yes,") are merged with what follows: a separate synthesis
    call per word costs more than it saves.
    """
    out: list[str] = []
    cur = ""
    for i, ch in enumerate(text):
        cur += ch
        nxt = text[i + 1] if i + 1 < len(text) else " "
        if ch in _CLAUSE_END and nxt.isspace() and len(cur.strip()) >= min_chars:
            out.append(cur.strip())
            cur = ""
    if cur.strip():
        if out and len(cur.strip()) < min_chars // 2:
            out[-1] = f"{out[-1]} {cur.strip()}"
        else:
            out.append(cur.strip())
    return out
