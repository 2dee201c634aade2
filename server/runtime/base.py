"""The interaction-model interface.

A runtime is loaded once per server process; each glasses session opens its own
``ModelSession`` holding that session's conversation (and, for in-process
backends, its KV cache). ``ModelSession.step`` is blocking: the engine calls it in
the runtime's own executor (``InteractionRuntime.executor``), never on the event
loop, and the whole step — including any generator — completes in that thread.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

__all__ = [
    "Action",
    "ActionKind",
    "Frame",
    "InteractionRuntime",
    "ModelSession",
    "RuntimeCapabilities",
    "TextSink",
    "TickInput",
]


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded camera frame and when it was taken."""

    image: Image.Image
    seq: int
    capture_time_ms: int
    received_at: float  # time.monotonic() when the server accepted it
    decode_ms: float = 0.0  # server time spent decoding it (reported in the trace)


@dataclass(frozen=True, slots=True)
class TickInput:
    """Everything the model sees at one tick."""

    tick_s: float  # real elapsed whole seconds since session start
    frame: Frame | None
    user_query: str | None = None
    # Text that enters this tick's turn before the time marker: delegation
    # results, location and route step, decoded barcodes.
    context: tuple[str, ...] = ()


class ActionKind(enum.StrEnum):
    SILENCE = "silence"
    RESPONSE = "response"
    DELEGATE = "delegate"


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    text: str = ""  # what to say (the reply, or the delegation note)
    question: str = ""  # for DELEGATE: the question for the background solver
    raw: str = ""  # the model's output as generated, for the trace and tests

    @property
    def silent(self) -> bool:
        return self.kind is ActionKind.SILENCE


SILENCE = Action(ActionKind.SILENCE, raw="</silence>")

# Called from the model thread with each complete clause of a reply as it is
# generated, so speech can start before the reply is finished.
TextSink = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RuntimeCapabilities:
    name: str
    incremental: bool = False  # per-tick cost independent of context length
    streams_text: bool = False  # calls the TextSink clause by clause
    vision: bool = True


class ModelSession(ABC):
    """One session's conversation with the model."""

    @abstractmethod
    def step(self, tick: TickInput, on_clause: TextSink | None = None) -> Action:
        """Run one tick and return the decided action (blocking)."""

    def heard(self, utterance_text: str, heard_text: str) -> None:  # noqa: B027
        """Speech was cut: keep only ``heard_text`` of ``utterance_text`` in context."""

    def add_context(self, text: str) -> None:  # noqa: B027
        """``text`` (e.g. a background answer) enters the next turn and the Q&A history.

        May be called from the event loop while a step runs in the model thread.
        """

    def close(self) -> None:  # noqa: B027
        """Release per-session resources (KV cache)."""


class InteractionRuntime(ABC):
    """A loaded interaction model shared by every session of the process."""

    def __init__(self, capabilities: RuntimeCapabilities) -> None:
        self.capabilities = capabilities
        # One thread per model: steps are serialised on the accelerator anyway,
        # and keeping them off the event loop keeps every socket responsive.
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"model-{capabilities.name}")
        self._closed = False

    @property
    def name(self) -> str:
        return self.capabilities.name

    @abstractmethod
    def open_session(self, instruction: str, *, language: str = "en") -> ModelSession:
        """Start a conversation under a standing instruction."""

    def warm_up(self) -> None:  # noqa: B027
        """Run one throwaway step so the first real tick is not the slow one."""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.executor.shutdown(wait=False, cancel_futures=True)
