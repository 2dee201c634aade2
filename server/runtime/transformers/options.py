"""Options of the in-process runtime, and the token arithmetic of a KV chunk."""

from __future__ import annotations

from dataclasses import dataclass

from server.runtime.actions import RESPONSE
from server.runtime.limits import MAX_PIXELS

__all__ = ["StepStats", "TransformersOptions"]


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
    chunk_ticks: int = 100  # 0: sized by the runtime for the GPU memory left after loading
    tick_token_budget: int = 300
    max_pixels: int | None = MAX_PIXELS  # the reference's cap per frame
    min_pixels: int | None = None  # None: the checkpoint's own
    summary_max_new_tokens: int = 64
    background_summary: bool = True
    video_history_chars: int = 1200
    qa_history_chars: int = 800
    # Sessions due together share one forward (batch.py): a forward waits up to this
    # long for the other sessions inside a step; 0 turns batching off (one at a time).
    batch_window_ms: float = 5.0
    batch_sessions: int = 4  # rows of one batched forward, and threads that step at once
    # KV memory shared by the live sessions (budget.py): 0 = what is free on the GPU
    # after loading (unbounded on CPU); each new session takes ``kv_share`` of what
    # is left, capped at ``chunk_ticks``.
    kv_budget_bytes: int = 0
    kv_share: float = 0.5

    def capacity(self, system_tokens: int) -> int:
        """Tokens of a session's preallocated KV chunk."""
        history = (self.video_history_chars + self.qa_history_chars) // 2  # ≥ 2 chars a token
        generation = len(RESPONSE) + self.max_new_tokens + 64 + self.summary_max_new_tokens
        return system_tokens + self.chunk_ticks * self.tick_token_budget + history + generation + 64

    def reply_room(self, response_tokens: int, end_tokens: int) -> int:
        """Tokens a tick may add beyond its turn: the reply draft and its end."""
        return response_tokens + self.max_new_tokens + end_tokens + 4

    def tick_room(self, response_tokens: int, end_tokens: int) -> int:
        """Free tokens the next tick needs, or the chunk closes now (with a summary)."""
        summary = 64 + self.summary_max_new_tokens
        return self.tick_token_budget + self.reply_room(response_tokens, end_tokens) + summary


@dataclass(frozen=True, slots=True)
class StepStats:
    """What the last step cost, for the benchmark (``debug_state().last_step``)."""

    new_tokens: int = 0
    cached_tokens: int = 0
    decide_ms: float = 0.0
    first_token_ms: float | None = None
    total_ms: float = 0.0
    score: float = 0.0  # log p(response) − log p(silence) at the first differing token
    batch_size: int = 1  # sessions that shared the decision forward
    wait_ms: float = 0.0  # waited for the model inside the step
