"""What every session shares, built once by the composition root (``server.app``).

The thread pools live here, not in module globals: the app builds them, hands them
to each session, and shuts them down last, after every session has closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.config import Settings
from server.engine.tick import Delegations
from server.runtime.base import InteractionRuntime
from server.tasks import Spawn
from server.voice.tts.base import TTSBackend

__all__ = [
    "DelegationService",
    "Executors",
    "Listener",
    "ListenerFactory",
    "SessionServices",
]


class Listener(Protocol):
    """The audio-in pipeline (server/voice/listener.py)."""

    async def feed(self, packet: bytes, capture_time_ms: int) -> None: ...

    def speech_started(self, text: str) -> None: ...

    def speech_stopped(self) -> None: ...

    async def close(self) -> None: ...


# (input format, event callback, *, language, spawn, dsp) -> a started listener
ListenerFactory = Callable[..., Listener]


class DelegationService(Protocol):
    def session(
        self, emit: Callable[[Any], Awaitable[None]], language: str, *, spawn: Spawn
    ) -> Delegations: ...

    async def aclose(self) -> None: ...


@dataclass
class Executors:
    """Thread pools for work every session shares (never the loop's default pool)."""

    media: Executor = field(  # JPEG decoding
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="media")
    )
    dsp: Executor = field(  # Opus decoding and VAD, sequential per session
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="audio-dsp")
    )
    opus: Executor = field(  # Opus encoding of speech
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="opus-encode")
    )

    def shutdown(self) -> None:
        for pool in (self.media, self.dsp, self.opus):
            pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class SessionServices:
    settings: Settings
    runtime: InteractionRuntime
    tts: TTSBackend
    executors: Executors = field(default_factory=Executors)
    listener_factory: ListenerFactory | None = None  # None = no speech input (text only)
    delegations: DelegationService | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
