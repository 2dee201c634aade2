"""A runtime that replays raw model outputs from a JSON Lines file.

For people building bridges and apps without a GPU, and for tests. Never the
default. Each line is ``{"at": <tick second>, "output": "</response> Door on your left."}``;
every other tick yields ``</silence>``. Outputs go through the real action parser,
so a script can exercise every action the model can produce. A line with a ``query``
is how a test has the model answer something at the moment it chooses: it asks.

Optional keys: ``"query"`` (the output fires at the first tick at or after
``at`` whose user query contains this text, instead of at ``at`` exactly) and
``"delay_ms"`` (simulate model time, for timing benchmarks).

Sessions sit on the shared ``Conversation``: background answers and heard notes
enter the next tick's context as they would for a real model, and each tick is
recorded as the model would see it (frames dropped, to stay small).
"""

from __future__ import annotations

import json
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from pathlib import Path

from server.errors import ModelLoadError
from server.runtime.actions import parse_action
from server.runtime.base import (
    SILENCE,
    Action,
    InteractionRuntime,
    ModelSession,
    RuntimeCapabilities,
    Stopwatch,
    TextSink,
    TickInput,
)
from server.runtime.conversation import Conversation, Turn

__all__ = ["ScriptLine", "ScriptedRuntime", "ScriptedSession", "load_script"]


@dataclass(frozen=True, slots=True)
class ScriptLine:
    at: float
    output: str
    query: str = ""
    delay_ms: float = 0.0


def load_script(path: Path) -> list[ScriptLine]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ModelLoadError(f"cannot read script {path}: {e.strerror}") from e
    lines: list[ScriptLine] = []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            obj = json.loads(raw)
            lines.append(
                ScriptLine(
                    at=float(obj["at"]),
                    output=str(obj["output"]),
                    query=str(obj.get("query", "")),
                    delay_ms=float(obj.get("delay_ms", 0.0)),
                )
            )
        except (ValueError, KeyError, TypeError) as e:
            raise ModelLoadError(
                f"{path}:{n}: expected a JSON object like "
                f'{{"at": 3, "output": "</response> Door on your left."}} ({e})'
            ) from e
    lines.sort(key=lambda s: s.at)
    return lines


class ScriptedRuntime(InteractionRuntime):
    def __init__(
        self,
        script: list[ScriptLine],
        *,
        name: str = "scripted",
        executor: Executor | None = None,  # the app's model thread; None: its own
    ) -> None:
        super().__init__(RuntimeCapabilities(name=name, incremental=True), executor)
        self.script = script
        self.sessions: list[ScriptedSession] = []  # for tests: what each session saw

    @classmethod
    def from_file(cls, path: str | Path, *, executor: Executor | None = None) -> ScriptedRuntime:
        path = Path(path)
        return cls(load_script(path), name=f"scripted:{path.name}", executor=executor)

    def open_session(self, instruction: str, *, language: str = "en") -> ModelSession:
        session = ScriptedSession(self.script, instruction, language)
        self.sessions.append(session)
        if len(self.sessions) > 64:  # a long-running server forgets old ones
            del self.sessions[0]
        return session


class ScriptedSession(ModelSession):
    def __init__(self, script: list[ScriptLine], instruction: str, language: str = "en") -> None:
        super().__init__(Conversation(instruction, language=language))
        self._pending = list(script)
        self.instruction = instruction
        # What the model "saw", for tests: the text of recent ticks, inbox lines
        # included (frames are dropped, so a server left running for hours stays small).
        self.ticks: deque[TickInput] = deque(maxlen=600)
        self.turns: deque[str] = deque(maxlen=600)  # each tick's rendered text
        self.heard_log: list[tuple[str, str]] = []
        self.notes: list[str] = []
        self.frames_seen = 0  # ticks that carried a new camera frame
        self.still_sizes: list[tuple[int, int]] = []  # (width, height) of each still shown

    def _run_turn(self, turn: Turn, on_clause: TextSink | None) -> Action:
        watch = Stopwatch()
        tick = turn.tick
        if tick.frame is not None:
            self.frames_seen += 1
            if tick.still:
                self.still_sizes.append(tick.frame.image.size)
        self.ticks.append(replace(tick, frame=None))
        self.turns.append(turn.text)
        for i, line in enumerate(self._pending):
            if line.at > tick.tick_s:
                break
            if line.query and line.query.lower() not in (tick.user_query or "").lower():
                continue
            del self._pending[i]
            if line.delay_ms:
                time.sleep(line.delay_ms / 1000)
            action = parse_action(line.output)
            watch.lap("decide")
            if on_clause is not None and action.text:
                on_clause(action.text)
            return replace(action, stages=tuple(watch.stages))
        watch.lap("decide")
        return replace(SILENCE, stages=tuple(watch.stages))

    # Both may come from any thread: list.append is atomic, and the base only queues.
    def heard(self, utterance_text: str, heard_text: str) -> None:
        self.heard_log.append((utterance_text, heard_text))
        super().heard(utterance_text, heard_text)

    def add_context(self, text: str) -> None:
        self.notes.append(text)
        super().add_context(text)
