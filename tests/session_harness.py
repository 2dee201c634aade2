"""An in-process session on virtual time: feed client events, read server events.

pipecat's ``run_test`` shape, livekit's virtual clock. No gRPC and no real sleeps:
the session runs on ``VirtualTimeLoop``, whose clock jumps to the next timer as
soon as nothing else can run. Work handed to a thread pool (``run_in_executor``)
holds the clock still until its result is back on the loop, so a model step or
an Opus encode takes no virtual time and the order of events is deterministic.

    run = run_session([(0.0, FrameIn(...)), (1.5, TextIn("quiet"))], runtime, until=4)
    assert run.types() == ["SessionReady", "Speech", "AudioOut", ...]
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from server.config import Settings
from server.events import AudioEncoding, AudioFormat, ClientEvent, ServerEvent, SessionStart
from server.runtime.base import InteractionRuntime
from server.session.services import (
    DelegationService,
    Executors,
    ListenerFactory,
    SessionServices,
)
from server.session.session import Session
from server.voice.tts.base import TTSBackend
from tests.fakes import InstantTTS, ScriptedLink

__all__ = [
    "SessionRun",
    "VirtualTimeLoop",
    "make_services",
    "run_session",
    "run_virtual",
]

T = TypeVar("T")
_IDLE_S = 2.0  # real seconds with nothing to do before the harness calls it a deadlock


class _VirtualSelector(selectors.DefaultSelector):
    """Never blocks on time: when the loop would wait for a timer, time jumps."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        events = super().select(0)
        if events or timeout == 0:
            return events
        while self._loop.in_threads:  # a thread is working: wait for it, in real time
            events = super().select(0.05)
            if events:
                return events
        if timeout is None:  # nothing scheduled, nothing running: only I/O can wake it
            events = super().select(_IDLE_S)
            if not events:
                raise RuntimeError(
                    f"session harness: deadlock at {self._loop.now:.2f} s (virtual): no timer, "
                    "no thread and no I/O left to wake any task"
                )
            return events
        self._loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.now = 0.0
        self.in_threads = 0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> asyncio.Future[Any]:
        self.in_threads += 1
        fut = super().run_in_executor(executor, func, *args)
        fut.add_done_callback(self._thread_done)  # on the loop, once the result is back
        return fut

    def _thread_done(self, _fut: asyncio.Future[Any]) -> None:
        self.in_threads -= 1


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


@dataclass
class SessionRun:
    events: list[tuple[float, ServerEvent]] = field(default_factory=list)
    session: Session | None = None

    def types(self, *, without: tuple[str, ...] = ("AudioOut",)) -> list[str]:
        """Event type names in order; audio packets are left out unless asked for."""
        return [type(e).__name__ for _, e in self.events if type(e).__name__ not in without]

    def of(self, kind: type[T]) -> list[T]:
        return [e for _, e in self.events if isinstance(e, kind)]

    def at(self, kind: type) -> list[float]:
        """Virtual times at which events of ``kind`` were sent."""
        return [t for t, e in self.events if isinstance(e, kind)]


def make_services(
    runtime: InteractionRuntime,
    *,
    tts: TTSBackend | None = None,
    delegations: DelegationService | None = None,
    listener_factory: ListenerFactory | None = None,
    settings: Settings | None = None,
) -> SessionServices:
    """Shared services on the running (virtual-time) loop; close with ``.executors``."""
    loop = asyncio.get_running_loop()
    return SessionServices(
        settings=settings or Settings(),
        runtime=runtime,
        tts=tts or InstantTTS(),
        executors=Executors(),
        delegations=delegations,
        listener_factory=listener_factory,
        clock=loop.time,
        sleep=asyncio.sleep,
    )


def run_session(
    script: Sequence[tuple[float, ClientEvent]],
    runtime: InteractionRuntime,
    *,
    until: float,
    start: SessionStart | None = None,
    tts: TTSBackend | None = None,
    delegations: DelegationService | None = None,
    listener_factory: ListenerFactory | None = None,
    settings: Settings | None = None,
) -> SessionRun:
    """Run one session over ``script`` until the client half-closes at ``until`` s."""
    start = start or SessionStart(audio_out=AudioFormat(AudioEncoding.PCM16, 16000))
    run = SessionRun()

    async def main() -> None:
        services = make_services(
            runtime,
            tts=tts,
            delegations=delegations,
            listener_factory=listener_factory,
            settings=settings,
        )
        executors = services.executors
        link = ScriptedLink(script, until)
        try:
            session = await Session.open(services, start)
            run.session = session
            life = asyncio.create_task(session.run())
            await session.serve(link)
            await life
        finally:
            executors.shutdown()
            run.events = link.sent

    run_virtual(main())
    return run
