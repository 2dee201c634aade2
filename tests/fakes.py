"""Fakes at the boundaries, implementing the real interfaces (STYLE.md)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

import numpy as np

from server.agents.base import Agent, AgentAnswer, AgentCapabilities, AgentError, DelegationRequest
from server.runtime.base import (
    SILENCE,
    Action,
    ActionKind,
    InteractionRuntime,
    ModelSession,
    RuntimeCapabilities,
    TextSink,
)
from server.runtime.conversation import Conversation, Turn
from server.voice.tts.base import PcmChunk, TTSBackend, TTSCapabilities, VoiceOptions


class StreamingRuntime(InteractionRuntime):
    """A model that writes its reply slowly, clause by clause, at a chosen tick —
    for checking that speech starts before the reply is finished."""

    def __init__(
        self, at: float, clauses: list[str], clause_delay_s: float = 0.3, question: str = ""
    ) -> None:
        super().__init__(RuntimeCapabilities(name="streaming-fake", streams_text=True))
        self.at = at
        self.clauses = clauses
        self.delay = clause_delay_s
        self.question = question  # non-empty: the reply is a delegation note
        self.sessions: list[_StreamingSession] = []

    def open_session(self, instruction: str, *, language: str = "en") -> ModelSession:
        s = _StreamingSession(self)
        self.sessions.append(s)
        return s


class _StreamingSession(ModelSession):
    def __init__(self, rt: StreamingRuntime) -> None:
        super().__init__(Conversation(""))
        self.rt = rt
        self.done = False
        self.heard_log: list[tuple[str, str]] = []

    def _run_turn(self, turn: Turn, on_clause: TextSink | None) -> Action:
        tick = turn.tick
        if self.done or tick.tick_s < self.rt.at:
            return SILENCE
        self.done = True
        # As the real runtimes do: the clause before a delegation marker (the note)
        # is never streamed.
        streamed = self.rt.clauses[:-1] if self.rt.question else self.rt.clauses
        for clause in streamed:
            time.sleep(self.rt.delay)
            if on_clause is not None:
                on_clause(clause)
        text = " ".join(self.rt.clauses)
        if self.rt.question:
            return Action(ActionKind.DELEGATE, text=text, question=self.rt.question)
        return Action(ActionKind.RESPONSE, text=text, raw=f"</response> {text}")

    def heard(self, utterance_text: str, heard_text: str) -> None:
        self.heard_log.append((utterance_text, heard_text))
        super().heard(utterance_text, heard_text)


class ScriptedAgent(Agent):
    """Answers from a script; each question waits until ``release`` (or not at all)."""

    def __init__(self, answers: dict[str, AgentAnswer | AgentError] | None = None) -> None:
        super().__init__(AgentCapabilities(name="scripted"))
        self.answers = answers or {}
        self.gate = asyncio.Event()
        self.gate.set()
        self.started: list[str] = []
        self.cancelled: list[str] = []

    async def _run(self, request: DelegationRequest) -> AgentAnswer:
        self.started.append(request.question)
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled.append(request.question)
            raise
        answer = self.answers.get(request.question, AgentAnswer(f"Answer to {request.question}."))
        if isinstance(answer, AgentError):
            raise answer
        return answer


class Spawner:
    """A session's ``spawn(coro, name)`` for tests: named tasks on the running loop,
    kept so a test can check that none of them outlives its owner's ``close()``."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    def __call__(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.append(task)
        return task

    @property
    def names(self) -> list[str]:
        return [t.get_name() for t in self.tasks]

    @property
    def running(self) -> list[str]:
        """Names of the spawned tasks that have not finished."""
        return [t.get_name() for t in self.tasks if not t.done()]


class InstantTTS(TTSBackend):
    """Speech that costs no time to make: silence, a quarter second a word, per clause.

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


class ScriptedListener:
    """A listener whose 'audio' packets say what the user did (the voice boundary).

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


class SleepyAgent(Agent):
    """Answers after ``delay_s`` of (virtual, under the session harness) time."""

    def __init__(
        self, delay_s: float, answer: str = "It is a tin of tomatoes.", *, urgent: bool = False
    ) -> None:
        super().__init__(AgentCapabilities(name="sleepy"))
        self.delay_s = delay_s
        self.reply = answer
        self.urgent = urgent

    async def _run(self, request: DelegationRequest) -> AgentAnswer:
        await asyncio.sleep(self.delay_s)
        return AgentAnswer(self.reply, urgent=self.urgent)
