"""What every session shares, built once by the composition root (``server.app``).

The thread pools live here, not in module globals or in the backends: the app builds
them (``Executors``), hands each session and backend its own, and shuts them down
last, after every session and backend has closed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.config import Settings
from server.engine.tick import Delegations
from server.events import AudioFormat
from server.runtime.base import InteractionRuntime
from server.session.emergency import Notifier
from server.session.handover import HandoverStore
from server.tasks import Spawn
from server.vision.ocr import OcrBackend
from server.voice.tts.base import TTSBackend

__all__ = [
    "DelegationService",
    "Executors",
    "Listener",
    "ListenerFactory",
    "SessionServices",
]

log = logging.getLogger(__name__)


class Listener(Protocol):
    """The audio-in pipeline (server/voice/listener.py)."""

    async def feed(self, packet: bytes, capture_time_ms: int) -> None: ...

    def speech_started(self, text: str) -> None: ...

    def speech_stopped(self) -> None: ...

    async def close(self) -> None: ...


class ListenerFactory(Protocol):
    """A started listener for one session: its input format and event callback, the
    session's language, the words finals are primed with (``command_hotwords``), and
    where its tasks and DSP run."""

    def __call__(
        self,
        fmt: AudioFormat,
        emit: Callable[[Any], Awaitable[None]],
        /,
        *,
        language: str,
        hotwords: str,
        spawn: Spawn,
        dsp: Executor,
    ) -> Listener: ...


class DelegationService(Protocol):
    def session(
        self, emit: Callable[[Any], Awaitable[None]], language: str, *, spawn: Spawn
    ) -> Delegations: ...

    async def aclose(self) -> None: ...


def _pool(workers: int, prefix: str) -> Callable[[], Executor]:
    return lambda: ThreadPoolExecutor(workers, thread_name_prefix=prefix)


@dataclass
class Executors:
    """Every thread pool of the process (never the loop's default pool).

    The app builds them all here, hands each backend the one it runs in, and shuts
    them down last (``shutdown``), after every session and backend has closed. A pool
    starts no thread until its first job, so one nothing uses costs nothing.
    """

    media: Executor = field(default_factory=_pool(2, "media"))  # JPEG decoding
    # Opus decoding and VAD, sequential per session
    dsp: Executor = field(default_factory=_pool(1, "audio-dsp"))
    opus: Executor = field(default_factory=_pool(1, "opus-encode"))  # Opus encoding of speech
    # One thread per model: steps are serialised on the accelerator anyway. Chunk
    # summaries run beside it, so the next tick does not wait for one.
    model: Executor = field(default_factory=_pool(1, "model-step"))
    summaries: Executor = field(default_factory=_pool(1, "model-summary"))
    asr: Executor = field(default_factory=_pool(1, "asr-worker"))  # WhisperOptions.workers: 1
    registry: Executor = field(default_factory=_pool(1, "murmur-registry"))  # store calls
    ocr: Executor = field(default_factory=_pool(1, "ocr"))  # reading stills ([vision] ocr)
    # One thread per TTS backend of the chain (tts_for): a voice stuck in its engine
    # must not hold up the next one, and engines such as espeak-ng's are not thread-safe.
    tts: dict[str, Executor] = field(default_factory=dict)

    def tts_for(self, backend: str) -> Executor:
        """The thread of the TTS backend named ``backend`` (made on first request)."""
        pool = self.tts.get(backend)
        if pool is None:
            pool = self.tts[backend] = ThreadPoolExecutor(1, thread_name_prefix=f"tts-{backend}")
        return pool

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Shut every pool down: queued work is dropped at once, work already running (a
        model step, a clause being synthesised) gets ``timeout_s`` in all to finish.
        False (and a warning) if some is still running then; the process exits after it."""
        pools = [self.media, self.dsp, self.opus, self.model, self.summaries, self.asr]
        pools += [self.registry, self.ocr, *self.tts.values()]
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)
        # shutdown(wait=True) has no timeout of its own: it waits in a helper thread.
        joiner = threading.Thread(target=_join, args=(pools,), name="pool-joiner", daemon=True)
        joiner.start()
        joiner.join(timeout_s)
        if joiner.is_alive():
            log.warning("thread pools still busy %.1f s after shutdown", timeout_s)
            return False
        return True


def _join(pools: list[Executor]) -> None:
    for pool in pools:
        pool.shutdown(wait=True)


@dataclass
class SessionServices:
    settings: Settings
    runtime: InteractionRuntime
    tts: TTSBackend
    executors: Executors = field(default_factory=Executors)
    listener_factory: ListenerFactory | None = None  # None = no speech input (text only)
    delegations: DelegationService | None = None
    emergency: Notifier | None = None  # the [emergency] contacts; None: the path is off
    ocr: OcrBackend | None = None  # [vision] ocr; None: stills go to the model unread
    # [fleet] store: where a draining frontend hands its sessions over (handover.py);
    # None: one frontend alone, nothing is handed over
    handover: HandoverStore | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
