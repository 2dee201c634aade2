"""The model: interaction runtimes in process. (Over HTTP: ``FakeVLLM``, tests/fake_vllm.py.)"""

from __future__ import annotations

import threading
import time

from server.codes import Code
from server.errors import Recoverable
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
from server.runtime.scripted import ScriptedRuntime, ScriptedSession

__all__ = ["CloseRecordingRuntime", "OutOfMemoryRuntime", "StreamingRuntime"]

# (tick second, clauses, question): a non-empty question makes the reply a delegation note.
_Reply = tuple[float, list[str], str]


class StreamingRuntime(InteractionRuntime):
    """A model that streams its reply clause by clause at a chosen tick, ``clause_delay_s``
    of model time apart — for checking that speech starts before the reply is finished.

    ``then`` adds later replies, streamed the same way.
    """

    def __init__(
        self, at: float, clauses: list[str], clause_delay_s: float = 0.0, question: str = ""
    ) -> None:
        super().__init__(RuntimeCapabilities(name="streaming-fake", streams_text=True))
        self.delay = clause_delay_s
        self.replies: list[_Reply] = [(at, clauses, question)]
        self.sessions: list[_StreamingSession] = []

    def then(self, at: float, clauses: list[str], question: str = "") -> StreamingRuntime:
        """Another reply, at a later tick; for sessions opened after this call."""
        self.replies.append((at, clauses, question))
        return self

    def open_session(self, instruction: str, *, language: str = "en") -> ModelSession:
        s = _StreamingSession(list(self.replies), self.delay)
        self.sessions.append(s)
        return s


class _StreamingSession(ModelSession):
    def __init__(self, replies: list[_Reply], delay_s: float) -> None:
        super().__init__(Conversation(""))
        self.pending = replies
        self.delay = delay_s
        self.heard_log: list[tuple[str, str]] = []

    def _run_turn(self, turn: Turn, on_clause: TextSink | None) -> Action:
        if not self.pending or turn.tick.tick_s < self.pending[0][0]:
            return SILENCE
        _, clauses, question = self.pending.pop(0)
        # As the real runtimes do: the clause before a delegation marker (the note's
        # last) is never streamed.
        for clause in clauses[:-1] if question else clauses:
            time.sleep(self.delay)
            if on_clause is not None:
                on_clause(clause)
        text = " ".join(clauses)
        if question:
            raw = f"</response> {text} </delegation> {question}"
            return Action(ActionKind.DELEGATE, text=text, question=question, raw=raw)
        return Action(ActionKind.RESPONSE, text=text, raw=f"</response> {text}")

    def heard(self, utterance_text: str, heard_text: str) -> None:
        self.heard_log.append((utterance_text, heard_text))
        super().heard(utterance_text, heard_text)


class OutOfMemoryRuntime(InteractionRuntime):
    """A model whose GPU is full: every ``open_session`` raises ``model.memory``."""

    def __init__(self) -> None:
        super().__init__(RuntimeCapabilities(name="out-of-memory"))

    def open_session(self, instruction: str, *, language: str = "en") -> ModelSession:
        raise Recoverable(Code.MODEL_MEMORY, "not enough GPU memory for a session's KV cache")


class CloseRecordingRuntime(ScriptedRuntime):
    """The scripted runtime, whose sessions note the thread their ``close`` ran in."""

    def open_session(self, instruction: str, *, language: str = "en") -> ModelSession:
        session = _CloseRecordingSession(self.script, instruction, language)
        self.sessions.append(session)
        return session


class _CloseRecordingSession(ScriptedSession):
    closed_in = ""  # the name of the thread close ran in

    def close(self) -> None:
        self.closed_in = threading.current_thread().name
        super().close()
