"""Fakes at the boundaries, implementing the real interfaces (STYLE.md)."""

from __future__ import annotations

import asyncio
import time

from server.agents.base import Agent, AgentAnswer, AgentCapabilities, AgentError, DelegationRequest
from server.runtime.base import (
    SILENCE,
    Action,
    ActionKind,
    InteractionRuntime,
    ModelSession,
    RuntimeCapabilities,
    TextSink,
    TickInput,
)


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
        self.rt = rt
        self.done = False
        self.heard_log: list[tuple[str, str]] = []

    def step(self, tick: TickInput, on_clause: TextSink | None = None) -> Action:
        if self.done or tick.tick_s < self.rt.at:
            return SILENCE
        self.done = True
        for clause in self.rt.clauses:
            time.sleep(self.rt.delay)
            if on_clause is not None:
                on_clause(clause)
        text = " ".join(self.rt.clauses)
        if self.rt.question:
            return Action(ActionKind.DELEGATE, text=text, question=self.rt.question)
        return Action(ActionKind.RESPONSE, text=text, raw=f"</response> {text}")

    def heard(self, utterance_text: str, heard_text: str) -> None:
        self.heard_log.append((utterance_text, heard_text))


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
