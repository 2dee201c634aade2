"""One session's conversation over HTTP: the chunk's serialised turns, on the shared
``Conversation``. Chunks roll over after ``chunk_ticks`` ticks, or after the server
refused a request (the context may have outgrown its limit)."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from server.runtime.actions import RESPONSE
from server.runtime.base import SILENCE, Action, ModelSession, Stopwatch, TextSink
from server.runtime.conversation import Conversation, ConversationState, Turn
from server.runtime.memory import SessionMemory
from server.runtime.openai.client import ModelRejected
from server.runtime.openai.reply import ReplyReader
from server.runtime.openai.wire import Turn as WireTurn
from server.runtime.openai.wire import dump, wire_turn
from server.runtime.prompt import assistant_message

if TYPE_CHECKING:
    from server.runtime.openai.runtime import OpenAIRuntime

__all__ = ["OpenAIDebugState", "OpenAISession"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OpenAIDebugState:
    conversation: ConversationState
    turns: int  # messages in the chunk's requests, system first
    frames_sent: int


class OpenAISession(ModelSession):
    def __init__(self, runtime: OpenAIRuntime, instruction: str, language: str) -> None:
        opts = runtime.options
        super().__init__(
            Conversation(
                instruction,
                language=language,
                chunk_ticks=opts.chunk_ticks,
                memory=SessionMemory(qa_max_chars=opts.qa_history_chars),
            )
        )
        self._rt = runtime
        self._opts = opts
        self._turns: list[WireTurn] = []  # the chunk's serialised messages, system first
        self._frames = 0  # frames sent in this session: their uuids
        self._uuid_prefix = f"murmur-{secrets.token_hex(6)}-"

    def _run_turn(self, turn: Turn, on_clause: TextSink | None) -> Action:
        if turn.first:
            self._turns = [self._rt.system_turn]
        if turn.revised is not None:  # only the last assistant turn is ever rewritten
            self._turns[-1] = wire_turn(assistant_message(turn.revised), self._opts)
        frame_id = None
        if turn.image is not None:
            self._frames += 1
            frame_id = f"{self._uuid_prefix}{self._frames}"
        user = wire_turn(turn.message, self._opts, frame_id)
        action = SILENCE
        try:
            action = self._decide(user, turn.tick.margin(self._opts.speak_margin), on_clause)
        except ModelRejected:
            self.conversation.roll_over_next()  # e.g. the context outgrew the server's limit
            raise
        finally:
            # A failed tick stays in the conversation as a silent one.
            self._turns += [user, wire_turn(assistant_message(action), self._opts)]
        return action

    def _decide(self, user: WireTurn, margin: float, on_clause: TextSink | None) -> Action:
        rt, watch = self._rt, Stopwatch()
        reader = rt.send_turns([*self._turns, user], lambda: ReplyReader(margin, on_clause))
        if not reader.wants_reply:
            action = reader.action()
            if reader.speaks and reader.decided_at is not None:
                watch.lap("decide", at=reader.decided_at)
                watch.lap("reply")
            else:
                watch.lap("decide")
            return replace(action, stages=tuple(watch.stages))
        watch.lap("decide")
        # The margin lets a reply through that the server did not generate: ask for it.
        start = WireTurn(dump({"role": "assistant", "content": RESPONSE}))
        try:
            reader = rt.send_turns(
                [*self._turns, user, start],
                lambda: ReplyReader(margin, on_clause, prefix=RESPONSE),
                continuation=True,
            )
        except ModelRejected as e:
            log.warning("the model server cannot continue a reply; staying silent (%s)", e)
            return replace(SILENCE, stages=tuple(watch.stages))
        watch.lap("reply")
        return replace(reader.action(), stages=tuple(watch.stages))

    def close(self) -> None:
        self._turns = []

    def debug_state(self) -> OpenAIDebugState:
        return OpenAIDebugState(self.conversation.state(), len(self._turns), self._frames)
