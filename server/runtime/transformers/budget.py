"""One KV memory budget shared by the live sessions of a runtime.

Each session's KV cache is allocated whole when it opens (``kv_cache.py``), so a
tick never allocates and never runs out of memory: when memory is short the
refusal comes at open, as ``Code.MODEL_MEMORY`` (the session layer turns it into
``CapacityError``, RESOURCE_EXHAUSTED on the wire), never at tick time.

The rule: a new session takes ``share`` (default ½) of the bytes left, but never
what the rest of the family (``family``, the batch size: 4) would need at the
shortest chunk, as whole ticks, capped at a full chunk (``chunk_ticks``) and never
under ``min_ticks`` (8: shorter and summaries would churn); it is refused when not
even ``min_ticks`` fit. So the chunk shrinks as sessions join, a family always
fits, and closing a session gives its bytes back for the next. With the 8B model (144 KiB a token in bf16, 300-token ticks, 1,417
tokens of system prompt, history and generation room per chunk; a full 100-tick
chunk is 31,417 tokens, 4.3 GiB), default options, chunk ticks of the n-th session:

| KV budget on a 24 GB card (README "Fitting one RTX 3090") | 1st | 2nd | 3rd | 4th | 5th | 6th |
| --- | --- | --- | --- | --- | --- | --- |
| 4.1 GiB (bf16 weights) | 45 | 19 | 8 | 8 | refused | refused |
| 13.4 GiB (INT4 weights) | 100 | 100 | 53 | 24 | 9 | 8 |

``tests/test_batched_runtime.py`` checks this table against ``KVBudget.plan``.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass

from server.codes import Code
from server.errors import Recoverable
from server.runtime.transformers.options import TransformersOptions

__all__ = ["MIN_CHUNK_TICKS", "KVBudget", "KVLease"]

MIN_CHUNK_TICKS = 8


@dataclass(slots=True)
class KVLease:
    """One session's part of the budget: its options (``chunk_ticks`` as granted)
    and the bytes its KV cache takes. ``release`` gives them back (twice is harmless)."""

    options: TransformersOptions
    tokens: int
    nbytes: int
    budget: KVBudget | None = None

    def release(self) -> None:
        budget, self.budget = self.budget, None
        if budget is not None:
            budget.give_back(self)


class KVBudget:
    """``total_bytes`` None: unbounded (CPU RAM); sessions get their full chunk."""

    def __init__(
        self,
        total_bytes: int | None,
        bytes_per_token: int,
        *,
        share: float = 0.5,
        family: int = 4,
        min_ticks: int = MIN_CHUNK_TICKS,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"kv_share must be in (0, 1], not {share}")
        self.total_bytes = total_bytes
        self.bytes_per_token = bytes_per_token
        self.share = share
        self.family = family
        self.min_ticks = min_ticks
        self._lock = threading.Lock()
        self._used = 0
        self._live = 0

    @property
    def used_bytes(self) -> int:
        return self._used

    @property
    def live(self) -> int:
        return self._live

    def lease(self, options: TransformersOptions, system_tokens: int) -> KVLease:
        """Size and reserve a new session's chunk; ``Recoverable(MODEL_MEMORY)`` when
        not even a ``min_ticks`` chunk is left."""
        with self._lock:
            left = None if self.total_bytes is None else self.total_bytes - self._used
            ticks = self._ticks(left, options, system_tokens, self._live)
            if ticks == 0:
                raise Recoverable(
                    Code.MODEL_MEMORY,
                    f"the KV budget ({_gib(self.total_bytes)} GiB) is held by {self._live} "
                    f"live sessions and {_gib(left)} GiB is less than a {self.min_ticks}-tick "
                    "chunk; end a session, or use INT4 weights or a lower max_pixels",
                )
            granted = dataclasses.replace(options, chunk_ticks=ticks)
            tokens = granted.capacity(system_tokens)
            lease = KVLease(granted, tokens, tokens * self.bytes_per_token, self)
            self._used += lease.nbytes
            self._live += 1
            return lease

    def give_back(self, lease: KVLease) -> None:
        with self._lock:
            self._used -= lease.nbytes
            self._live -= 1

    def plan(self, options: TransformersOptions, system_tokens: int, sessions: int) -> list[int]:
        """Chunk ticks the 1st … ``sessions``-th session opened on this budget, empty
        and with none closing, would get (0: refused). Reserves nothing."""
        left = self.total_bytes
        out = []
        for live in range(sessions):
            ticks = self._ticks(left, options, system_tokens, live)
            out.append(ticks)
            if left is not None and ticks:
                granted = dataclasses.replace(options, chunk_ticks=ticks)
                left -= granted.capacity(system_tokens) * self.bytes_per_token
        return out

    def _ticks(
        self, left: int | None, options: TransformersOptions, system_tokens: int, live: int
    ) -> int:
        cap = options.chunk_ticks
        if left is None:
            return cap
        fixed = dataclasses.replace(options, chunk_ticks=0).capacity(system_tokens)
        per_tick = options.tick_token_budget

        def fitting(nbytes: float) -> int:
            return max(0, (int(nbytes) // self.bytes_per_token - fixed) // per_tick)

        least = min(self.min_ticks, cap)
        # Room for the rest of the family at the shortest chunk stays free.
        reserve = max(0, self.family - 1 - live) * (fixed + least * per_tick)
        ticks = min(cap, fitting(min(left * self.share, left - reserve * self.bytes_per_token)))
        if ticks >= least:
            return ticks
        return least if fitting(left) >= least else 0


def _gib(nbytes: int | None) -> str:
    return "unbounded" if nbytes is None else f"{nbytes / 2**30:.1f}"
