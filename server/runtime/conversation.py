"""One session's conversation with the model, the same for every backend (DESIGN §2).

``Conversation`` owns what does not depend on how the model runs:

- the standing instruction, with the reply language, restated in each chunk's
  first turn;
- the inbox of ``Heard`` and ``Context`` entries. ``heard`` and ``add_context`` may
  be called from any thread (the event loop calls them while a step runs in the
  model thread): they only put an entry in a thread-safe queue, and ``next_turn``
  (model thread) applies them at the start of the next tick, in arrival order;
- the tick count and the rollover decision: a chunk holds ``chunk_ticks`` ticks,
  and a backend may end one early (``roll_over_next``: KV cache full, context
  refused);
- Q&A memory through ``SessionMemory`` (user queries, what was said, background
  answers), carried into the next chunk as ``[Q&A History]``;
- the heard-edit rule: a cut reply is rewritten in the last assistant turn when
  nothing followed it yet (``Turn.revised``, which the backend applies for free),
  else the next turn says what the user heard.

The backend gets one ``Turn`` per tick and implements only how it runs.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from PIL import Image

from server.runtime.base import SILENCE, Action, ActionKind, TickInput
from server.runtime.memory import SessionMemory
from server.runtime.prompt import Message, history_text, user_message

__all__ = ["Context", "Conversation", "ConversationState", "Entry", "Heard", "Turn"]


@dataclass(frozen=True, slots=True)
class Heard:
    """Speech was cut: of ``utterance`` the user heard only ``heard``."""

    utterance: str
    heard: str


@dataclass(frozen=True, slots=True)
class Context:
    """A line (e.g. a background answer) for the next turn and the Q&A history."""

    text: str


Entry = Heard | Context


@dataclass(frozen=True, slots=True)
class Turn:
    """One tick's user turn, rendered by ``prompt.py`` for every backend."""

    tick: TickInput  # its context holds the inbox lines that entered this turn
    index: int  # ticks before it in its chunk: 0 opens a chunk
    chunk: int  # the chunk's number in the session, from 1
    message: Message  # prompt.user_message: text, then the image if there is a frame
    # The last assistant turn rewritten to what the user heard of it, or None.
    revised: Action | None = None

    @property
    def first(self) -> bool:
        return self.index == 0

    @property
    def text(self) -> str:
        return "".join(c["text"] for c in self.message["content"] if c["type"] == "text")

    @property
    def image(self) -> Image.Image | None:
        return self.tick.frame.image if self.tick.frame is not None else None


@dataclass(frozen=True, slots=True)
class ConversationState:
    """A read-only snapshot for tests and benchmarks (``ModelSession.debug_state``)."""

    instruction: str
    chunk: int  # chunks started so far
    chunk_ticks: int  # ticks recorded in the current chunk
    rollover_due: bool  # the next turn opens a new chunk
    last_action: Action | None  # the current chunk's last assistant turn
    qa_history: str
    video_history: str


class Conversation:
    def __init__(
        self,
        instruction: str,
        *,
        language: str = "en",
        chunk_ticks: int = 100,
        memory: SessionMemory | None = None,
    ) -> None:
        if language and not language.lower().startswith("en"):
            instruction += f"\nReply in the user's language ({language})."
        self.instruction = instruction
        self.chunk_ticks = max(1, chunk_ticks)
        self.memory = memory or SessionMemory()
        # SimpleQueue: put and get are atomic and never block, from any thread.
        self._inbox: queue.SimpleQueue[Entry] = queue.SimpleQueue()
        self._chunk = 0
        self._ticks = 0
        self._due = True  # no chunk yet
        self._last: Action | None = None

    # -- any thread -----------------------------------------------------------

    def heard(self, utterance: str, heard: str) -> None:
        self._inbox.put(Heard(utterance, heard))

    def add_context(self, text: str) -> None:
        self._inbox.put(Context(text))

    # -- model thread ---------------------------------------------------------

    def next_turn(self, tick: TickInput) -> Turn:
        """This tick's turn: a new chunk if one is due, then the inbox, then the text."""
        if self._due or self._ticks >= self.chunk_ticks:
            self._start_chunk()
        lines, revised = self._drain()
        if lines:
            tick = replace(tick, context=(*tick.context, *lines))
        return self._render(tick, revised)

    def reopen(self, turn: Turn) -> Turn:
        """``turn`` again as the first of a new chunk (the backend's chunk is full)."""
        self._start_chunk()
        return self._render(turn.tick, None)

    def is_last_of_chunk(self) -> bool:
        """The turn being run closes its chunk (a backend may summarise it now)."""
        return self._due or self._ticks + 1 >= self.chunk_ticks

    def roll_over_next(self) -> None:
        """End the chunk after the turn being run."""
        self._due = True

    def record(self, turn: Turn, action: Action) -> None:
        """The turn ran and ``action`` is its assistant turn."""
        self._ticks += 1
        self._last = action
        if turn.tick.user_query:
            self.memory.add_qa(f"User: {turn.tick.user_query}")
        if action.kind is ActionKind.RESPONSE:
            self.memory.add_qa(f"Assistant: {action.text}")
        elif action.kind is ActionKind.DELEGATE:
            self.memory.add_qa(
                f"Assistant: {action.text} (asked the background solver: {action.question})"
            )

    def state(self) -> ConversationState:
        return ConversationState(
            instruction=self.instruction,
            chunk=self._chunk,
            chunk_ticks=self._ticks,
            rollover_due=self._due or self._ticks >= self.chunk_ticks,
            last_action=self._last,
            qa_history=self.memory.qa_text(),
            video_history=self.memory.video_text(),
        )

    def export(self) -> dict[str, Any]:
        """What a resume on another frontend needs, as plain data (model thread, after
        the last step): the memory, with the inbox applied, and the chunk count. The
        chunk's own turns stay behind (a backend's cache of them cannot travel)."""
        self._drain()
        return {"chunk": self._chunk, "memory": self.memory.export()}

    def restore(self, data: dict[str, Any]) -> None:
        """Go on from ``export``'s data (model thread, before the first step): the next
        turn opens a new chunk whose first turn carries the video and Q&A history."""
        self.memory.restore(data.get("memory") or {})
        self._chunk = max(1, int(data.get("chunk") or 1))
        self._ticks = 0
        self._due = True
        self._last = None

    # -- internals ------------------------------------------------------------

    def _start_chunk(self) -> None:
        self._chunk += 1
        self._ticks = 0
        self._due = False
        self._last = None

    def _render(self, tick: TickInput, revised: Action | None) -> Turn:
        if self._ticks == 0:
            query = "\n".join(q for q in (self.instruction, tick.user_query) if q)
            preamble = ""
            if self._chunk > 1:
                preamble = history_text(self.memory.video_text(), self.memory.qa_text())
            message = user_message(tick, query=query, preamble=preamble)
        else:
            message = user_message(tick)
        if tick.still:
            _give_budget(message, tick.frame_max_pixels)
        return Turn(tick, self._ticks, self._chunk, message, revised)

    def _drain(self) -> tuple[list[str], Action | None]:
        lines: list[str] = []
        revised: Action | None = None
        while True:
            try:
                entry = self._inbox.get_nowait()
            except queue.Empty:
                return lines, revised
            if isinstance(entry, Context):
                text = " ".join(entry.text.split())
                if text:
                    lines.append(text)
                    self.memory.add_qa(text)
                continue
            utterance, heard = entry.utterance.strip(), entry.heard.strip()
            if not utterance:
                continue
            self.memory.revise_last_qa(partial(_heard_qa, utterance=utterance, heard=heard))
            edited = _heard_action(self._last, utterance, heard)
            if edited is not None:
                # Nothing followed the reply yet: its turn is rewritten in place.
                self._last = revised = edited
            else:
                # Later turns followed it: rewriting it would change the cached prefix.
                lines.append(f'(The user heard only "{heard}" of your reply "{utterance}".)')


def _give_budget(message: Message, max_pixels: int | None) -> None:
    """A still's image part says its pixel budget (the ``max_pixels`` key qwen-vl-utils
    reads), for backends that fit images from the message (the OpenAI wire);
    templates ignore the key."""
    for part in message["content"]:
        if part["type"] == "image":
            part["max_pixels"] = max_pixels


def _cut(text: str, utterance: str, heard: str) -> str:
    """``text`` with ``utterance`` in it cut to what was heard of it; what followed it
    was said apart (a streamed reply's urgent later sentence, its own alert) and stays."""
    i = text.rfind(utterance)
    return " ".join(f"{text[:i]}{heard} {text[i + len(utterance) :]}".split())


def _heard_action(last: Action | None, utterance: str, heard: str) -> Action | None:
    if last is None or last.silent or utterance not in last.text:
        return None
    text = _cut(last.text, utterance, heard)
    if text:
        return replace(last, text=text)
    if last.kind is ActionKind.DELEGATE:
        return replace(last, text="")  # the question still went to the solver
    return SILENCE


def _heard_qa(line: str, utterance: str, heard: str) -> str | None:
    if not line.startswith("Assistant: ") or utterance not in line:
        return None
    cut = _cut(line, utterance, heard)
    return "" if cut == "Assistant:" else cut
