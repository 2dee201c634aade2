"""One session's tick protocol on the in-process model, with an incremental KV cache.

Each tick costs one forward over the new turn only: the pending tail of the
previous assistant turn, the new user turn (text and one frame), the assistant
prefix and the first marker tokens shared by ``</silence>`` and ``</response>``.
The action is decided from that forward's logits (no generation for silence); a
reply is then generated token by token, streamed by clause, and its draft dropped
from the cache: the canonical assistant turn (``action_text`` + ``<|im_end|>``) is
kept as pending ids (``turns.py``). The conversation bookkeeping (inbox, rollover,
Q&A, heard edits) is the shared ``Conversation``'s; closed chunks are summarised
in the background (``summaries.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import Executor
from dataclasses import dataclass

import torch

from server.codes import Code
from server.errors import Recoverable
from server.runtime.actions import RESPONSE, parse_action
from server.runtime.base import SILENCE, Action, ModelSession, Stopwatch, TextSink
from server.runtime.clauses import ClauseStream
from server.runtime.conversation import Conversation, ConversationState, Turn
from server.runtime.memory import SessionMemory
from server.runtime.prompt import Message, action_text, system_message
from server.runtime.transformers.batch import ModelLane
from server.runtime.transformers.budget import KVLease
from server.runtime.transformers.forward import (
    ASSISTANT_PREFIX,
    QwenForward,
    Segment,
    render_message,
)
from server.runtime.transformers.kv_cache import ChunkKVCache
from server.runtime.transformers.options import StepStats, TransformersOptions
from server.runtime.transformers.sampling import Sampler, generate
from server.runtime.transformers.summaries import ChunkSummariser
from server.runtime.transformers.turns import ChunkTurn, KVChunk, MarkerIds

__all__ = ["TransformersDebugState", "TransformersSession"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TransformersDebugState:
    """A read-only snapshot of one session (``debug_state()``)."""

    conversation: ConversationState
    messages: tuple[Message, ...]  # the chunk's turns, rendered exactly as cached
    token_ids: tuple[int, ...]  # the chunk as ids: what is cached, then what is pending
    decision_prefix_ids: tuple[int, ...]  # marker tokens fed with the user turn
    decision_logits: torch.Tensor | None  # the last tick's logits at the decision point
    cached_tokens: int
    capacity: int
    kv_bytes: int
    summary_running: bool
    last_step: StepStats


class TransformersSession(ModelSession):
    def __init__(
        self,
        fwd: QwenForward,
        options: TransformersOptions,
        instruction: str,
        language: str = "en",
        *,
        summaries: Executor | None = None,
        lane: ModelLane | None = None,
        lease: KVLease | None = None,
    ) -> None:
        """``lane``: how its forwards reach the model (batched with other sessions'
        or alone, batch.py); ``lease``: its part of the runtime's KV budget (budget.py),
        given back at ``close``."""
        memory = SessionMemory(
            video_max_chars=options.video_history_chars, qa_max_chars=options.qa_history_chars
        )
        super().__init__(
            Conversation(
                instruction, language=language, chunk_ticks=options.chunk_ticks, memory=memory
            )
        )
        self.options = options
        self._fwd = fwd
        self._lane = lane or ModelLane(fwd)
        self._lease = lease
        self._markers = MarkerIds.of(fwd)
        system = system_message()
        system_ids = fwd.tokenize(render_message(system))
        cache = ChunkKVCache(fwd.num_layers, options.capacity(len(system_ids)))
        try:
            cache.allocate(
                kv_heads=fwd.kv_heads, head_dim=fwd.head_dim, dtype=fwd.kv_dtype, device=fwd.device
            )
        except torch.cuda.OutOfMemoryError as e:
            raise Recoverable(
                Code.MODEL_MEMORY,
                f"not enough GPU memory for a session's KV cache ({cache.capacity} tokens); "
                "lower chunk_ticks or max_pixels, or end another session",
            ) from e
        self._chunk = KVChunk(
            fwd, cache, ChunkTurn("system", str(system["content"][0]["text"])), system_ids
        )
        self._sampler = Sampler(options.temperature, options.top_p, options.seed)
        executor = summaries if options.background_summary else None
        self._summaries = ChunkSummariser(self._chunk, memory, options, self._sampler, executor)
        # A step and close never overlap, even if close comes from another thread.
        self._lock = threading.Lock()
        self._stats = StepStats()
        self._logits: torch.Tensor | None = None

    # -- the tick ---------------------------------------------------------------

    def _before_turn(self) -> None:
        self._summaries.stop()  # it writes the memory the next chunk's first turn reads

    def _run_turn(self, turn: Turn, on_clause: TextSink | None) -> Action:
        lane = self._lane
        with self._lock, lane.stepping():
            watch = Stopwatch()
            started = time.perf_counter()
            chunk = self._chunk
            if turn.first:
                chunk.restart()
            if turn.revised is not None:
                self._revise(turn.revised)
            segment = self._encode(turn)
            if not self._fits(segment):
                log.warning(
                    "KV chunk full after %d ticks; rolling over without a summary", turn.index
                )
                turn = self.conversation.reopen(turn)
                chunk.restart()
                segment = self._encode(turn)
                if not self._fits(segment):
                    self.conversation.roll_over_next()
                    raise Recoverable(
                        Code.MODEL_CONTEXT_FULL,
                        "one tick's text and frame exceed the model chunk; "
                        "raise tick_token_budget or lower max_pixels",
                    )
            first_token_ms: float | None = None
            with lane.holding():
                chunk.ensure_system(lane.forward)
                chunk.turns.append(ChunkTurn("user", turn.text, turn.image))
                self._logits = logits = chunk.feed(segment, lane.forward)
                lane.note_decision()
                score = self._score(logits)
                decide_ms = watch.lap("decide")
                action = SILENCE
                if score > turn.tick.margin(self.options.speak_margin):
                    action, first_token_ms = self._reply(on_clause, started)
                    watch.lap("reply")
            lane.leave()  # an inline summary below is no forward for a batch to wait for
            self._commit(action)
            self._stats = StepStats(
                new_tokens=len(segment),
                cached_tokens=chunk.cache.length,
                decide_ms=decide_ms,
                first_token_ms=first_token_ms,
                total_ms=(time.perf_counter() - started) * 1000,
                score=score,
                batch_size=lane.batch_size,
                wait_ms=lane.wait_ms,
            )
            room = self.options.tick_room(len(self._markers.response), len(self._markers.end))
            if self.conversation.is_last_of_chunk() or chunk.free() < room:
                self.conversation.roll_over_next()
                self._summaries.start(self.options)
            return dataclasses.replace(
                action,
                stages=tuple(watch.stages),
                batch_size=lane.batch_size,
                model_wait_ms=lane.wait_ms,
            )

    def _encode(self, turn: Turn) -> Segment:
        text = render_message(turn.message) + ASSISTANT_PREFIX
        segment = self._fwd.encode(text, turn.image, turn.tick.frame_max_pixels)
        return self._fwd.join(segment, self._fwd.text_segment(self._markers.common))

    def _fits(self, segment: Segment) -> bool:
        room = self.options.reply_room(len(self._markers.response), len(self._markers.end))
        return len(self._chunk.pending) + len(segment) + room <= self._chunk.free()

    def _score(self, logits: torch.Tensor) -> float:
        m = self._markers
        d = len(m.common)
        logp = torch.log_softmax(logits, dim=-1)
        return float(logp[m.response[d]] - logp[m.silence[d]])

    def _reply(self, on_clause: TextSink | None, started: float) -> tuple[Action, float | None]:
        """Generate the reply after ``</response>``; the caller is in ``lane.holding()``."""
        chunk, fwd = self._chunk, self._fwd
        decision = chunk.mark()
        run = self._lane.forward
        logits = chunk.feed_ids(self._markers.response[len(self._markers.common) :], run)
        stream = ClauseStream()
        first: list[float] = []

        def on_token(ids: list[int]) -> None:
            if not first:
                first.append((time.perf_counter() - started) * 1000)
            if on_clause is not None:
                for clause in stream.feed(fwd.decode(ids)):
                    on_clause(clause)

        ids = generate(
            logits,
            self.options.max_new_tokens,
            pick=self._sampler.pick,
            feed=lambda token: chunk.feed_ids([token], run),
            stop_ids=fwd.stop_ids,
            on_token=on_token,
        )
        text = fwd.decode(ids)
        if on_clause is not None:
            for clause in stream.finish(text):
                on_clause(clause)
        # The draft's KV is dropped: the canonical turn is appended as pending ids.
        chunk.rewind(decision)
        return parse_action(RESPONSE + text), (first[0] if first else None)

    # -- the assistant turn, kept as pending ids ------------------------------------

    def _commit(self, action: Action) -> None:
        text = action_text(action)
        self._chunk.turns.append(ChunkTurn("assistant", text))
        self._chunk.pending = self._tail(text)

    def _revise(self, action: Action) -> None:
        """What the user heard of the last reply; its turn is still only pending ids."""
        last = self._chunk.turns[-1]
        if last.role != "assistant" or not self._chunk.pending:  # a step that failed midway
            log.warning("a heard edit came for a turn that is not pending; ignored")
            return
        last.text = action_text(action)
        self._chunk.pending = self._tail(last.text)

    def _tail(self, text: str) -> list[int]:
        """Ids of the assistant turn ``text`` after the already-fed marker prefix."""
        ids = self._fwd.tokenize(text) + self._markers.end
        common = self._markers.common
        if ids[: len(common)] != common:  # cannot happen with a marker-led turn
            raise ValueError(f"assistant turn {text!r} does not start with a marker")
        return ids[len(common) :]

    # -- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        self._summaries.stop()
        with self._lock:  # not while a step is using the buffers
            self._chunk.cache.release()
            if self._lease is not None:
                self._lease.release()  # the bytes go back to the runtime's KV budget

    def debug_state(self) -> TransformersDebugState:
        chunk = self._chunk
        return TransformersDebugState(
            conversation=self.conversation.state(),
            messages=tuple(chunk.messages()),
            token_ids=tuple(chunk.ids + chunk.pending),
            decision_prefix_ids=tuple(self._markers.common),
            decision_logits=self._logits,
            cached_tokens=chunk.cache.length,
            capacity=chunk.capacity,
            kv_bytes=chunk.cache.nbytes(),
            summary_running=self._summaries.running,
            last_step=self._stats,
        )
