"""The interaction-model interface.

A runtime is loaded once per server process; each glasses session opens its own
``ModelSession`` holding that session's conversation (and, for in-process
backends, its KV cache).

Threads, the contract with the session and the engine:

- ``ModelSession.step`` and ``ModelSession.close`` are blocking and run in the
  runtime's executor (``InteractionRuntime.executor``, one thread per model: the
  app's, or the runtime's own when built standalone), never on the event loop; the
  whole step, any generator included, completes there.
- ``ModelSession.heard`` and ``ModelSession.add_context`` are safe to call from any
  thread (the event loop calls them directly, with no executor), cheap and
  non-blocking: they only put a typed entry in the conversation's inbox
  (``conversation.py``), which the next ``step`` applies in the model thread.

``step`` is a template (livekit's "the base owns the bookkeeping, the plugin
implements ``_run``"): it drains the inbox and builds the tick's turn through the
shared ``Conversation``, calls the backend's ``_run_turn``, and records the action
(Q&A memory, chunk rollover). Backends implement only their turn.
"""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from server.errors import Recoverable
from server.tasks import WorkerPool

if TYPE_CHECKING:
    import numpy as np

    from server.runtime.conversation import Conversation, Turn

__all__ = [
    "SILENCE",
    "Action",
    "ActionKind",
    "Frame",
    "InteractionRuntime",
    "ModelSession",
    "RuntimeCapabilities",
    "Stopwatch",
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
    # Its 32×24 grey thumbnail (engine/fall.grey_thumbnail), for telling a still view
    # and a changed one (engine/scene.py); None where nobody computed it.
    thumb: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class TickInput:
    """Everything the model sees at one tick."""

    tick_s: float  # real elapsed whole seconds since session start
    # None when no new camera frame arrived since the last tick: the turn then says
    # so in text instead of repeating an image (prompt.NO_FRAME).
    frame: Frame | None
    user_query: str | None = None
    # Text that enters this tick's turn before the time marker: delegation
    # results, location and route step, decoded barcodes, a still's OCR text.
    context: tuple[str, ...] = ()
    # The frame's pixel budget when it is more than a frame's: a full-resolution
    # still the server asked for (limits.STILL_MAX_PIXELS). None: the runtime's own
    # cap. Every runtime fits the image to the larger of the two (never below its cap).
    frame_max_pixels: int | None = None
    # How much </response> must beat </silence> by at this tick (the mode's); None:
    # the runtime's configured margin.
    speak_margin: float | None = None
    # A fresh frame came but showed the view the model last saw (engine/scene.py
    # FrameBudget): the turn says so in text (prompt.UNCHANGED) instead of an image.
    unchanged: bool = False

    @property
    def still(self) -> bool:
        return self.frame is not None and self.frame_max_pixels is not None

    def margin(self, configured: float) -> float:
        """The speak margin in force: this tick's, else ``configured``."""
        return configured if self.speak_margin is None else self.speak_margin


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
    # Milliseconds measured inside the model thread, in order: ("decide", ms) for
    # encoding the turn and scoring the markers, and ("reply", ms) when a reply was
    # generated, even one that then parsed as silence.
    stages: tuple[tuple[str, float], ...] = ()
    # How many sessions' ticks shared this step's model forward (1: it ran alone), and
    # the ms the step waited inside the runtime for the model (for a batch to gather,
    # behind other forwards), apart from its own compute.
    batch_size: int = 1
    model_wait_ms: float = 0.0

    @property
    def silent(self) -> bool:
        return self.kind is ActionKind.SILENCE


SILENCE = Action(ActionKind.SILENCE, raw="</silence>")

# Called from the model thread with each complete clause of a reply as it is
# generated, so speech can start before the reply is finished.
TextSink = Callable[[str], None]


class Stopwatch:
    """Laps in milliseconds for ``Action.stages``."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.stages: list[tuple[str, float]] = []

    def lap(self, stage: str, at: float | None = None) -> float:
        """Close ``stage`` now, or at ``at`` (an earlier ``time.perf_counter()``)."""
        now = time.perf_counter() if at is None else at
        ms = (now - self._last) * 1000
        self._last = now
        self.stages.append((stage, ms))
        return ms


@dataclass(frozen=True, slots=True)
class RuntimeCapabilities:
    name: str
    incremental: bool = False  # per-tick cost independent of context length
    streams_text: bool = False  # calls the TextSink clause by clause
    vision: bool = True


class ModelSession(ABC):
    """One session's conversation with the model (threads: see the module docstring)."""

    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation

    def step(self, tick: TickInput, on_clause: TextSink | None = None) -> Action:
        """Run one tick and return the decided action (blocking, model thread)."""
        self._before_turn()
        turn = self.conversation.next_turn(tick)
        try:
            action = self._run_turn(turn, on_clause)
        except Recoverable:
            self.conversation.record(turn, SILENCE)  # a failed tick stays as a silent one
            raise
        self.conversation.record(turn, action)
        return action

    @abstractmethod
    def _run_turn(self, turn: Turn, on_clause: TextSink | None) -> Action:
        """Decide (and generate) this tick's action; set ``Action.stages``.

        ``turn.first`` opens a new chunk; ``turn.revised`` replaces the last
        assistant turn (what the user heard of it). A ``Recoverable`` raised here
        leaves the tick in the conversation as a silent one.
        """

    def _before_turn(self) -> None:  # noqa: B027
        """Model thread, before the turn is built: settle background work on memory."""

    def heard(self, utterance_text: str, heard_text: str) -> None:
        """Speech was cut: keep only ``heard_text`` of ``utterance_text`` in context.

        Any thread; applied at the start of the next ``step``.
        """
        self.conversation.heard(utterance_text, heard_text)

    def add_context(self, text: str) -> None:
        """``text`` (e.g. a background answer) enters the next turn and the Q&A history.

        Any thread; applied at the start of the next ``step``.
        """
        self.conversation.add_context(text)

    def close(self) -> None:  # noqa: B027
        """Release per-session resources (KV cache). Model thread."""

    def debug_state(self) -> object:
        """A read-only snapshot (a frozen dataclass) for tests and benchmarks.

        Here the conversation's ``ConversationState``; backends return their own
        dataclass holding it as ``conversation``.
        """
        return self.conversation.state()


class InteractionRuntime(ABC):
    """A loaded interaction model shared by every session of the process."""

    def __init__(self, capabilities: RuntimeCapabilities, executor: Executor | None = None) -> None:
        """``executor``: the app's one-thread model pool; None makes (and owns) one."""
        self.capabilities = capabilities
        # One thread per model: steps are serialised on the accelerator anyway,
        # and keeping them off the event loop keeps every socket responsive.
        self._pool = WorkerPool(executor, prefix=f"model-{capabilities.name}")
        self._closed = False

    @property
    def name(self) -> str:
        return self.capabilities.name

    @property
    def executor(self) -> Executor:
        """The model thread every ``open_session``, step and session close runs in."""
        return self._pool.executor

    @abstractmethod
    def open_session(self, instruction: str, *, language: str = "en") -> ModelSession:
        """Start a conversation under a standing instruction."""

    def warm_up(self) -> None:  # noqa: B027
        """Run one throwaway step so the first real tick is not the slow one."""

    def close(self) -> None:
        """Release the model; an own pool is shut down, the app's is left to the app."""
        if not self._closed:
            self._closed = True
            self._pool.close()
