"""The TTS interface.

A backend implements one private method, ``_synthesize``, which may block (local
engines) or await (network engines). The public ``stream`` method is the same for
all: blocking backends run in the backend's executor (the app's, or its own when
built standalone) and the whole clause is synthesised inside that thread, so no
model ever runs on the event loop.

Each ``PcmChunk`` carries the clause it speaks, so the speaker never splits the
text a second time. A backend that can change voice under way (the fallback
chain) announces it to ``subscribe``rs; for the others ``subscribe`` is a no-op.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, replace

import numpy as np

from server.events import SpeechKind
from server.tasks import WorkerPool
from server.voice.profile import MAX_STEPS

__all__ = [
    "PcmChunk",
    "SwitchCallback",
    "TTSBackend",
    "TTSCapabilities",
    "TTSError",
    "VoiceOptions",
    "split_clauses",
]

SwitchCallback = Callable[[str, str, str], None]  # (from backend, to backend, reason)


class TTSError(Exception):
    """A backend could not synthesise; the fallback chain moves on."""


@dataclass(frozen=True, slots=True)
class VoiceOptions:
    language: str = "en"
    voice: str = ""  # backend-specific; empty = the backend's default for the language
    rate: float = 1.0  # 1.0 = the voice's normal pace; guidance is calm, slightly slow
    volume: float = 0.8  # 0..1 gain (a styled chain: dB against [voice] volume)
    # What a styled chain (``StyledTTS``) needs to render this speech in its voice style:
    kind: SpeechKind = SpeechKind.NARRATION  # alerts are louder and clearer than the rest
    level_steps: int = 0  # "louder"/"quieter": 3 dB steps from the style's levels
    style: str = ""  # "quiet" or "normal"; "" = the server's [voice] style
    whisper: bool = False  # a whispering voice where the backend has one (the style sets it)

    def louder(self, steps: int, bounds: tuple[int, int] = (-MAX_STEPS, MAX_STEPS)) -> VoiceOptions:
        """``steps`` more "louder" (negative: "quieter"), within ``bounds`` (a styled
        chain's ``level_range``: as far as its style can go)."""
        low, high = bounds
        level = min(max(self.level_steps + steps, low), high)
        return replace(self, level_steps=level)


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
    text: str  # the clause this audio speaks (one of split_clauses(text))


class TTSBackend(ABC):
    def __init__(self, capabilities: TTSCapabilities, executor: Executor | None = None) -> None:
        """``executor``: the app's one thread for this backend; None makes (and owns) one.
        A pool starts no thread until used, so one a backend never blocks in costs nothing."""
        self.capabilities = capabilities
        self._pool = WorkerPool(executor, prefix=f"tts-{capabilities.name}")

    @property
    def name(self) -> str:
        return self.capabilities.name

    @property
    def _executor(self) -> Executor:
        """This backend's thread, for synthesis and decoding."""
        return self._pool.executor

    def level_range(self, options: VoiceOptions) -> tuple[int, int]:
        """How many "quieter" (negative) and "louder" steps ``options.level_steps`` may
        hold for this rendering. Only a styled chain sets levels; a bare backend none."""
        return 0, 0

    def subscribe(self, callback: SwitchCallback) -> Callable[[], None]:
        """Hear about voice switches; returns the unsubscribe call. A single backend
        never switches, so by default nothing is ever called."""
        return _no_op

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
        """An own pool is shut down; the app's is left to the app."""
        self._pool.close()

    async def aclose(self) -> None:
        """``close``, for owners that can wait (a backend with tasks awaits them)."""
        self.close()

    @abstractmethod
    def describe(self) -> str:
        """One line for logs."""


def _no_op() -> None:
    pass


def _collect(fn, clause: str, options: VoiceOptions) -> PcmChunk:  # type: ignore[no-untyped-def]
    # Runs in the backend's thread: the generator is consumed here, never on the loop.
    parts = list(fn(clause, options))
    if not parts:
        return PcmChunk(np.zeros(0, dtype=np.int16), 0, clause)
    rate = parts[0].sample_rate
    return PcmChunk(np.concatenate([p.pcm for p in parts]), rate, clause)


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
