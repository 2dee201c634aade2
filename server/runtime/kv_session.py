"""One session's conversation on the in-process model, with an incremental KV cache.

Each tick costs one forward over the new turn only: the tail of the previous
assistant turn, the new user turn (text and one frame), the assistant prefix and
the first marker tokens shared by ``</silence>`` and ``</response>``. The action is
decided from that forward's logits (no generation for silence); a reply is then
generated token by token, streamed by clause, and the canonical assistant turn
(``action_text`` + ``<|im_end|>``) is kept — as ids not yet fed, so that a speech
cut can still rewrite it for free, and so the cache always equals what a full
recompute of the rendered conversation would hold.

Ticks are grouped into chunks. When a chunk closes, a background thread asks the
same model to summarise it (over the chunk's cache, one token per lock hold, cut
short the moment the next tick arrives); the next chunk reuses the same KV buffers
from just after the cached system prompt and opens with ``[Video History]`` and
``[Q&A History]`` text.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from server.errors import Recoverable
from server.runtime.actions import RESPONSE, SILENCE_MARK, parse_action
from server.runtime.base import SILENCE, Action, ActionKind, ModelSession, TextSink, TickInput
from server.runtime.clauses import ClauseStream
from server.runtime.kv_cache import ChunkKVCache
from server.runtime.memory import SessionMemory
from server.runtime.prompt import action_text, history_text, system_message, user_message
from server.runtime.qwen_forward import ASSISTANT_PREFIX, IM_END, QwenForward, render_message

__all__ = ["StepStats", "TransformersOptions", "TransformersSession"]

log = logging.getLogger(__name__)

SUMMARY_PROMPT = (
    "Summarise the video so far for your own memory in at most three short sentences: "
    "where the user is, what they did, people, objects and hazards seen, and what "
    "they asked or were told."
)
COMPRESS_PROMPT = (
    "Compress these notes about a video into at most three short sentences, keeping "
    "places, hazards and the user's requests:\n"
)


@dataclass(frozen=True, slots=True)
class TransformersOptions:
    """Decoding, decision and memory settings of the in-process runtime.

    ``chunk_ticks`` default (100, the reference's) fits a 24 GB RTX 3090 with one
    session: 8B weights in bf16 take ~17.6 GB (vision tower included), CUDA context
    and activations ~1.5 GB. The KV cache costs 36 layers × 8 KV heads × 128 dims
    × 2 (K and V) × 2 bytes = 144 KiB per token in bf16. A tick is ~200–300 tokens
    (a 448×448 frame is 196 vision tokens, a frame at the 262,144-pixel cap 256,
    plus ~20–40 text tokens), so ``tick_token_budget`` 300 × 100 ticks + ~1.5k
    tokens of system prompt, history and generation room ≈ 31.5k tokens ≈ 4.3 GiB,
    preallocated once per session: 17.6 + 1.5 + 4.3 ≈ 23.4 GB.
    """

    speak_margin: float = 0.0  # speak when log p(response) − log p(silence) > margin
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int = 0
    chunk_ticks: int = 100
    tick_token_budget: int = 300
    max_pixels: int | None = 262_144  # the reference's cap per frame
    min_pixels: int | None = None  # None: the checkpoint's own
    summary_max_new_tokens: int = 64
    background_summary: bool = True
    video_history_chars: int = 1200
    qa_history_chars: int = 800


@dataclass(slots=True)
class StepStats:
    """What the last step cost, for the trace and the benchmark."""

    new_tokens: int = 0
    cached_tokens: int = 0
    decide_ms: float = 0.0
    first_token_ms: float | None = None
    total_ms: float = 0.0
    score: float = 0.0  # log p(response) − log p(silence) at the first differing token


@dataclass(slots=True)
class _Mark:
    length: int
    position: int


@dataclass(slots=True)
class _Turn:
    role: str
    text: str
    image: Image.Image | None = None


@dataclass(slots=True)
class _Chunk:
    turns: list[_Turn] = field(default_factory=list)
    ticks: int = 0
    closed: bool = False


class TransformersSession(ModelSession):
    def __init__(
        self, fwd: QwenForward, options: TransformersOptions, instruction: str, language: str = "en"
    ) -> None:
        self._fwd = fwd
        self.options = options
        self.instruction = instruction
        if language and not language.lower().startswith("en"):
            self.instruction += f"\nReply in the user's language ({language})."
        self.memory = SessionMemory(
            video_max_chars=options.video_history_chars, qa_max_chars=options.qa_history_chars
        )
        self.stats = StepStats()
        self.last_logits: torch.Tensor | None = None  # at the decision point, for tests
        self._silence_ids = fwd.tokenize(SILENCE_MARK)
        self._response_ids = fwd.tokenize(RESPONSE)
        d = 0
        while self._silence_ids[d] == self._response_ids[d]:
            d += 1  # the markers cannot be prefixes of one another
        self._common = self._silence_ids[:d]
        self._end_ids = fwd.tokenize(f"{IM_END}\n")
        system = system_message()
        self._system_ids = fwd.tokenize(render_message(system))
        self.capacity = self._capacity(len(self._system_ids))
        self._cache = ChunkKVCache(fwd.num_layers, self.capacity)
        try:
            self._cache.allocate(
                kv_heads=fwd.kv_heads, head_dim=fwd.head_dim, dtype=fwd.kv_dtype, device=fwd.device
            )
        except torch.cuda.OutOfMemoryError as e:
            raise Recoverable(
                "model_memory",
                f"not enough GPU memory for a session's KV cache ({self.capacity} tokens); "
                "lower chunk_ticks or max_pixels, or end another session",
                component="model",
                retryable=True,
            ) from e
        self._ids: list[int] = []  # fed into the cache, in order
        self._pending: list[int] = []  # known to come next, not fed yet
        self._position = 0  # next rotary position
        self._system_mark: _Mark | None = None
        self._chunk = _Chunk(turns=[_Turn("system", system["content"][0]["text"])])
        self._inbox: deque[tuple[str, str, str]] = deque()
        self._lock = threading.Lock()
        self._summary: threading.Thread | None = None
        self._preempt = threading.Event()
        self._rng = torch.Generator().manual_seed(options.seed)

    def _capacity(self, system_tokens: int) -> int:
        o = self.options
        history = (o.video_history_chars + o.qa_history_chars) // 2  # ≥ 2 chars a token
        generation = len(RESPONSE) + o.max_new_tokens + 64 + o.summary_max_new_tokens
        return system_tokens + o.chunk_ticks * o.tick_token_budget + history + generation + 64

    # -- public API -----------------------------------------------------------

    def heard(self, utterance_text: str, heard_text: str) -> None:
        self._inbox.append(("heard", utterance_text, heard_text))

    def add_context(self, text: str) -> None:
        self._inbox.append(("context", text, ""))

    def close(self) -> None:
        self._stop_summary()
        with self._lock:  # not while a step is using the buffers
            self._cache.release()

    @property
    def cached_tokens(self) -> int:
        return self._cache.length

    def token_ids(self) -> list[int]:
        """The chunk's conversation as ids: what is cached, then what is pending."""
        return self._ids + self._pending

    def messages(self) -> list[dict[str, Any]]:
        """The current chunk as chat messages, rendered exactly as cached."""
        out: list[dict[str, Any]] = []
        for t in self._chunk.turns:
            content: list[dict[str, Any]] = [{"type": "text", "text": t.text}]
            if t.image is not None:
                content.append({"type": "image", "image": t.image})
            out.append({"role": t.role, "content": content})
        return out

    @property
    def decision_prefix_ids(self) -> list[int]:
        """The assistant's first marker tokens, fed with the user turn before deciding."""
        return list(self._common)

    def step(self, tick: TickInput, on_clause: TextSink | None = None) -> Action:
        with self._lock:
            started = time.perf_counter()
            self._finish_chunk_if_closed()
            lines = self._drain_inbox()
            turn, segment = self._encode_turn(tick, lines)
            if (
                self._cache.length + len(self._pending) + len(segment) + self._room()
                > self.capacity
            ):
                log.warning(
                    "KV chunk full after %d ticks; rolling over without a summary",
                    self._chunk.ticks,
                )
                self._new_chunk()
                turn, segment = self._encode_turn(tick, lines)
                if len(self._pending) + len(segment) + self._room() > self._free():
                    raise Recoverable(
                        "model_context_full",
                        "one tick's text and frame exceed the model chunk; "
                        "raise tick_token_budget or lower max_pixels",
                        component="model",
                    )
            with self._fwd.lock:
                self._ensure_system()
                self._chunk.turns.append(turn)
                logits = self._feed(segment)
                self.stats = StepStats(new_tokens=len(segment), score=self._score(logits))
                self.last_logits = logits
                self.stats.decide_ms = (time.perf_counter() - started) * 1000
                if self.stats.score > self.options.speak_margin:
                    action = self._reply(on_clause, started)
                else:
                    action = SILENCE
            self._commit(action)
            self._chunk.ticks += 1
            self.stats.cached_tokens = self._cache.length
            self.stats.total_ms = (time.perf_counter() - started) * 1000
            if tick.user_query:
                self.memory.add_qa(f"User: {tick.user_query}")
            if action.kind is ActionKind.RESPONSE:
                self.memory.add_qa(f"Assistant: {action.text}")
            elif action.kind is ActionKind.DELEGATE:
                self.memory.add_qa(f"Assistant (asked a solver): {action.question}")
            if self._chunk.ticks >= self.options.chunk_ticks or self._free() < self._tick_room():
                self._close_chunk()
            return action

    # -- turns ----------------------------------------------------------------

    def _encode_turn(self, tick: TickInput, lines: list[str]) -> tuple[_Turn, Any]:
        if lines:
            tick = dataclasses.replace(tick, context=(*tick.context, *lines))
        first = len(self._chunk.turns) == 1
        if first:
            query = self.instruction
            if tick.user_query:
                query = f"{query}\n{tick.user_query}"
            preamble = history_text(self.memory.video_text(), self.memory.qa_text())
            message = user_message(tick, query=query, preamble=preamble)
        else:
            message = user_message(tick)
        image = tick.frame.image if tick.frame is not None else None
        text = "".join(c["text"] for c in message["content"] if c["type"] == "text")
        segment = self._fwd.encode(render_message(message) + ASSISTANT_PREFIX, image)
        segment = self._fwd.join(segment, self._fwd.text_segment(self._common))
        return _Turn("user", text, image), segment

    def _drain_inbox(self) -> list[str]:
        lines: list[str] = []
        while self._inbox:
            kind, a, b = self._inbox.popleft()
            if kind == "context":
                lines.append(a)
                self.memory.add_qa(a)
            else:
                self._apply_heard(a, b, lines)
        return lines

    def _apply_heard(self, utterance: str, heard: str, lines: list[str]) -> None:
        last = self._chunk.turns[-1]
        if last.role == "assistant" and self._pending and utterance.strip() in last.text:
            # The turn is still only pending ids: rewrite it, nothing to recompute.
            action = parse_action(last.text.replace(utterance.strip(), heard.strip(), 1))
            last.text = action_text(action)
            self._pending = self._assistant_tail(last.text)
        elif utterance.strip():
            # Already followed by other turns: say so in the next one instead.
            lines.append(
                f'(The user heard only "{heard.strip()}" of your reply "{utterance.strip()}".)'
            )

    def _assistant_tail(self, text: str) -> list[int]:
        """Ids of the assistant turn ``text`` after the already-fed marker prefix."""
        ids = self._fwd.tokenize(text) + self._end_ids
        d = len(self._common)
        if ids[:d] != self._common:  # cannot happen with a marker-led turn
            raise ValueError(f"assistant turn {text!r} does not start with a marker")
        return ids[d:]

    def _commit(self, action: Action) -> None:
        text = action_text(action)
        self._chunk.turns.append(_Turn("assistant", text))
        self._pending = self._assistant_tail(text)

    # -- model ----------------------------------------------------------------

    def _feed(self, segment: Any) -> torch.Tensor:
        if self._pending:
            segment = self._fwd.join(self._fwd.text_segment(self._pending), segment)
        logits = self._fwd.forward(segment, self._cache, self._position)
        self._ids.extend(segment.ids[0].tolist())
        self._position += int(segment.positions.max()) + 1
        self._pending = []
        return logits

    def _feed_ids(self, ids: list[int]) -> torch.Tensor:
        return self._feed(self._fwd.text_segment(ids))

    def _mark(self) -> _Mark:
        return _Mark(self._cache.length, self._position)

    def _rewind(self, mark: _Mark) -> None:
        self._cache.truncate(mark.length)
        del self._ids[mark.length :]
        self._position = mark.position
        self._pending = []

    def _ensure_system(self) -> None:
        if self._system_mark is None:
            self._feed_ids(self._system_ids)
            self._system_mark = self._mark()

    def _score(self, logits: torch.Tensor) -> float:
        d = len(self._common)
        logp = torch.log_softmax(logits, dim=-1)
        return float(logp[self._response_ids[d]] - logp[self._silence_ids[d]])

    def _pick(self, logits: torch.Tensor) -> int:
        t = self.options.temperature
        if t <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / t, dim=-1).cpu()
        if self.options.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_p, 0) - sorted_p < self.options.top_p
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        return int(torch.multinomial(probs, 1, generator=self._rng))

    def _reply(self, on_clause: TextSink | None, started: float) -> Action:
        decision = self._mark()
        logits = self._feed_ids(self._response_ids[len(self._common) :])
        stream = ClauseStream()
        generated: list[int] = []

        def on_text(text: str) -> bool:
            if self.stats.first_token_ms is None:
                self.stats.first_token_ms = (time.perf_counter() - started) * 1000
            if on_clause is not None:
                for clause in stream.feed(text):
                    on_clause(clause)
            return True

        generated = self._generate(logits, self.options.max_new_tokens, on_text)
        text = self._fwd.decode(generated)
        if on_clause is not None:
            for clause in stream.finish(text):
                on_clause(clause)
        # The draft's KV is dropped: the canonical turn is appended as pending ids.
        self._rewind(decision)
        action = parse_action(RESPONSE + text)
        return action

    def _generate(
        self, logits: torch.Tensor, max_new: int, on_text: Callable[[str], bool]
    ) -> list[int]:
        """Greedy/sampled decoding; the caller holds the model lock."""
        generated: list[int] = []
        for _ in range(max_new):
            token = self._pick(logits)
            if token in self._fwd.stop_ids:
                break
            generated.append(token)
            if not on_text(self._fwd.decode(generated)) or len(generated) >= max_new:
                break
            logits = self._feed_ids([token])
        return generated

    # -- chunks ---------------------------------------------------------------

    def _room(self) -> int:
        """Tokens a tick may add beyond its turn: the reply draft and its end."""
        return len(self._response_ids) + self.options.max_new_tokens + len(self._end_ids) + 4

    def _tick_room(self) -> int:
        summary = 64 + self.options.summary_max_new_tokens
        return self.options.tick_token_budget + self._room() + summary

    def _free(self) -> int:
        return self.capacity - self._cache.length

    def _close_chunk(self) -> None:
        self._chunk.closed = True
        self._preempt.clear()
        if self.options.background_summary:
            self._summary = threading.Thread(
                target=self._summarise, name="model-summary", daemon=True
            )
            self._summary.start()
        else:
            self._summarise()

    def _finish_chunk_if_closed(self) -> None:
        if self._chunk.closed:
            self._stop_summary()
            self._new_chunk()

    def _stop_summary(self) -> None:
        thread = self._summary
        if thread is not None:
            self._preempt.set()  # the summary stops at its next token
            thread.join()
            self._summary = None

    def _new_chunk(self) -> None:
        if self._system_mark is not None:
            self._rewind(self._system_mark)
        self._chunk = _Chunk(turns=self._chunk.turns[:1])

    def _summarise(self) -> None:
        """Summarise the closed chunk over its own cache; stop when a tick arrives."""
        try:
            prompt = self._fwd.tokenize(
                render_message({"role": "user", "content": SUMMARY_PROMPT}) + ASSISTANT_PREFIX
            )
            summary = self._generate_preemptible(prompt, self.options.summary_max_new_tokens)
            if summary:
                self.memory.add_summary(summary)
            if self.memory.needs_compression():
                self.memory.compress(self._compress)
        except Exception:  # a failed summary must not end the session
            log.exception("chunk summary failed")

    def _compress(self, notes: str) -> str | None:
        if self._system_mark is None or self._preempt.is_set():
            return None
        with self._fwd.lock:
            self._rewind(self._system_mark)  # the closed chunk is no longer needed
        prompt = self._fwd.tokenize(
            render_message({"role": "user", "content": COMPRESS_PROMPT + notes}) + ASSISTANT_PREFIX
        )
        if len(prompt) + self.options.summary_max_new_tokens > self._free():
            return None
        text = self._generate_preemptible(prompt, self.options.summary_max_new_tokens)
        return text or None

    def _generate_preemptible(self, prompt: list[int], max_new: int) -> str:
        """Generate holding the model lock one token at a time; stop when preempted."""
        if self._preempt.is_set() or len(prompt) + max_new > self._free():
            return ""
        with self._fwd.lock:
            logits = self._feed_ids(prompt)
        generated: list[int] = []
        for _ in range(max_new):
            if self._preempt.is_set():
                break
            token = self._pick(logits)
            if token in self._fwd.stop_ids:
                break
            generated.append(token)
            with self._fwd.lock:
                logits = self._feed_ids([token])
        text = self._fwd.decode(generated).strip()
        if self._preempt.is_set() and len(generated) >= 4:
            # Cut short: keep whole sentences when there are some.
            cut = max(text.rfind(". "), text.rfind("! "), text.rfind("? "))
            text = text[: cut + 1] if cut > len(text) // 3 else text
        return text if len(generated) >= 4 or not self._preempt.is_set() else ""
