"""One tick, end to end: snapshot → model step → policy → speech and delegation.

``TickEngine`` is per session and holds no task of its own: the session's ticker
calls ``tick`` on schedule. The model step runs in the runtime's executor; every
other stage is plain, fast code on the loop, timed for the trace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from server.agents.phrases import apology, filler
from server.engine.policy import GuidancePolicy, Utterance
from server.errors import Recoverable
from server.events import (
    Cue,
    CueKind,
    LocationIn,
    Notice,
    ServerEvent,
    SpeechKind,
    TickTrace,
)
from server.runtime.base import (
    Action,
    ActionKind,
    Frame,
    InteractionRuntime,
    ModelSession,
    TickInput,
)
from server.telemetry.timing import StageTimer

__all__ = ["Delegations", "TickEngine", "TickOptions"]

log = logging.getLogger(__name__)

Emit = Callable[[ServerEvent], Awaitable[None]]


class _Result(Protocol):
    @property
    def question(self) -> str: ...
    @property
    def spoken(self) -> str: ...
    @property
    def urgent(self) -> bool: ...


class Delegations(Protocol):
    """The per-session side of the delegation manager (server/agents)."""

    def start(
        self,
        question: str,
        *,
        frames: tuple[bytes, ...] = (),
        location: str | None = None,
        context: str = "",
    ) -> str: ...

    def cancel_all(self, reason: str) -> None: ...

    def take_results(self) -> Sequence[_Result]: ...

    async def wait_result(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TickOptions:
    language: str = "en"
    want_trace: bool = False
    location_in_context: bool = False  # navigation mode: location enters each turn


class TickEngine:
    def __init__(
        self,
        runtime: InteractionRuntime,
        model: ModelSession,
        policy: GuidancePolicy,
        say: Callable[..., None],
        emit: Emit,
        *,
        delegations: Delegations | None = None,
        recent_frames: Callable[[], tuple[bytes, ...]] = tuple,
        options: TickOptions = TickOptions(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime = runtime
        self.model = model
        self.policy = policy
        self._say = say
        self._emit = emit
        self.delegations = delegations
        self._recent_frames = recent_frames
        self.options = options
        self._clock = clock
        self._queries: deque[str] = deque(maxlen=8)
        self._location: LocationIn | None = None
        self._unconfigured_noted = False

    # ------------------------------------------------------------------ inputs

    def add_query(self, text: str) -> None:
        if text.strip():
            self._queries.append(text.strip())

    def set_location(self, loc: LocationIn) -> None:
        self._location = loc

    def location_text(self) -> str | None:
        loc = self._location
        if loc is None:
            return None
        parts = [f"Location: {loc.lat:.5f}, {loc.lon:.5f} (±{loc.accuracy_m:.0f} m)"]
        if loc.heading_deg:
            parts.append(f"heading {loc.heading_deg:.0f}°")
        if loc.speed_mps:
            parts.append(f"speed {loc.speed_mps:.1f} m/s")
        if loc.route_step:
            parts.append(f"route step: {loc.route_step}")
        return ", ".join(parts)

    # ------------------------------------------------------------------ the tick

    async def tick(
        self,
        tick_s: float,
        frame: Frame | None,
        *,
        fresh: bool = True,
        slip_ms: float = 0.0,
        coalesced: int = 0,
    ) -> Action:
        timer = StageTimer()
        if frame is not None and fresh:
            timer.add("decode", frame.decode_ms)  # done in the reader, off the loop
        with timer.stage("snapshot"):
            query = " ".join(self._queries) if self._queries else None
            self._queries.clear()
            context: list[str] = []
            if self.options.location_in_context and (loc := self.location_text()):
                context.append(loc)
            tick = TickInput(tick_s=tick_s, frame=frame, user_query=query, context=tuple(context))
        now = self._clock()
        frame_age_ms = (now - frame.received_at) * 1000 if frame is not None else -1.0

        with timer.stage("model"):
            action, streamed = await self._step(tick, answering=query is not None)

        with timer.stage("policy"):
            utterances = self._decide(action, answering=query is not None, streamed=streamed)
        with timer.stage("dispatch"):
            for u in utterances:
                self._say(u)
            if action.kind is ActionKind.DELEGATE:
                if streamed and self.delegations is not None:
                    # The note was already spoken as it streamed; the cue still says
                    # "thinking" while the agent works.
                    await self._emit(Cue(CueKind.THINKING, intensity=0.5))
                await self._delegate(action)
        if self.options.want_trace:
            await self._emit(
                TickTrace(
                    tick_s=tick_s,
                    action=action.kind.value,
                    text=action.text,
                    user_query=query or "",
                    frame_age_ms=frame_age_ms,
                    timings=tuple(timer.stages),
                    coalesced=coalesced,
                    slip_ms=slip_ms,
                )
            )
        return action

    async def _step(self, tick: TickInput, *, answering: bool) -> tuple[Action, bool]:
        """Run the model; True when the reply was already handed to speech clause by clause."""
        loop = asyncio.get_running_loop()
        stream = _ClauseStream(loop) if self.runtime.capabilities.streams_text else None
        try:
            fut = loop.run_in_executor(
                self.runtime.executor,
                self.model.step,
                tick,
                stream.put_threadsafe if stream is not None else None,
            )
            if stream is None:
                return await fut, False
            try:
                first = await stream.first(fut)
                if first is not None:
                    # Speak the first clause while the model is still writing the rest.
                    u = self.policy.reply(first, self._clock(), answering=answering)
                    if u is not None:
                        self._say(u, stream.rest())
                return await fut, first is not None
            finally:
                stream.close()
        except Recoverable as e:
            await self._emit(Notice(e.code, e.message, e.component, e.retryable))
        except Exception as e:  # the session survives a bad step; the tick is silent
            log.exception("model step failed")
            await self._emit(
                Notice(
                    "model.error",
                    f"the model failed on this tick ({type(e).__name__}); it stays silent "
                    "and tries again next tick",
                    "model",
                    True,
                )
            )
        return Action(ActionKind.SILENCE), False

    def _decide(self, action: Action, *, answering: bool, streamed: bool) -> list[Utterance]:
        now = self._clock()
        out: list[Utterance] = []
        if streamed:
            pass  # already being spoken as it was generated
        elif action.kind is ActionKind.RESPONSE:
            u = self.policy.reply(action.text, now, answering=answering)
            if u is not None:
                out.append(u)
        elif action.kind is ActionKind.DELEGATE and self.delegations is None:
            # Nobody to ask: say so rather than promise an answer that never comes.
            out.append(self.policy.announce(apology(self.options.language), SpeechKind.SYSTEM, now))
        elif action.kind is ActionKind.DELEGATE:
            note = action.text or filler(self.options.language)
            out.append(
                self.policy.announce(note, SpeechKind.DELEGATION_NOTE, now, CueKind.THINKING)
            )
        return out

    def deliver_results(self) -> int:
        """Finished delegations: spoken now (behind any warning, unless urgent) and
        folded into the next tick's turn and the Q&A history. Returns how many."""
        if self.delegations is None:
            return 0
        results = self.delegations.take_results()
        now = self._clock()
        for r in results:
            self.model.add_context(f"[Background answer] {r.question} → {r.spoken}")
            u = self.policy.announce(r.spoken, SpeechKind.DELEGATION_RESULT, now, CueKind.DONE)
            if r.urgent:
                u = Utterance(u.text, u.kind, u.priority + 20, now, u.cue, preempt=True)
            self._say(u)
        return len(results)

    async def _delegate(self, action: Action) -> None:
        if self.delegations is None:
            if not self._unconfigured_noted:
                self._unconfigured_noted = True
                await self._emit(
                    Notice(
                        "agent.unconfigured",
                        "the model asked a background agent, but none is configured; set "
                        "[agent] backend in the server config (openai, command or webhook)",
                        "agent",
                    )
                )
            return
        self.delegations.start(
            action.question,
            frames=self._recent_frames(),
            location=self.location_text(),
            context=action.text,
        )


class _ClauseStream:
    """Clauses handed over from the model thread, read on the loop."""

    _DONE = object()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._q: asyncio.Queue[object] = asyncio.Queue()

    def put_threadsafe(self, clause: str) -> None:
        self._loop.call_soon_threadsafe(self._q.put_nowait, clause)

    def close(self) -> None:
        # Runs on the loop after the step finished: every clause is already queued.
        self._q.put_nowait(self._DONE)

    async def first(self, step: asyncio.Future[Action]) -> str | None:
        """The first clause, or None if the step finished without one."""
        getter = asyncio.ensure_future(self._q.get())
        waiting: set[asyncio.Future[Any]] = {getter, step}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            item = getter.result()
            return None if item is self._DONE else str(item)
        # The step finished first; a clause may still sit in the queue.
        while not self._q.empty():
            item = self._q.get_nowait()
            if item is not self._DONE:
                return str(item)
        return None

    async def rest(self) -> AsyncIterator[str]:
        while (item := await self._q.get()) is not self._DONE:
            yield str(item)
