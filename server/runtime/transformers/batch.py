"""Several sessions' forwards as one: a family on one GPU (DESIGN §8).

Sessions whose ticks fall due together share one forward. Their new tokens are
*packed* into one sequence (no padding): projections, MLP and vision tower run
over all of them at once, each token keeps its own rotary positions, each row's
new keys and values go into that session's own ``ChunkKVCache``, and attention
runs per row against that row's cache only (``attention.PackedRows``), with the
same kernels as a forward of its own. Images enter in row order. The logits of
each row's last token come back to its session.

``StepBatcher`` collects the forwards: the first caller that finds no batch
running leads; it waits up to ``window_s`` for the other sessions inside a step
to bring theirs, then runs them together under the model lock while they wait
for their logits. A session stepping alone never waits: its forward runs at
once through ``QwenForward.forward``, the batch-1 path. Reply tokens go through
the same door, so sessions generating at the same time decode in one batch.
Each session reaches the model through its ``ModelLane``, which also keeps what
the trace reports: how many sessions shared the step and how long it waited.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch

from server.runtime.transformers.attention import PACKED, PackedRows, folded_mask
from server.runtime.transformers.forward import QwenForward, Segment
from server.runtime.transformers.kv_cache import ChunkFullError, ChunkKVCache

__all__ = ["ModelLane", "StepBatcher", "forward_packed"]


class _PackedKV:
    """The cache the model sees in a packed forward: row ``r``'s new keys and values
    are written into ``caches[r]``, and the views attention reads are kept in
    ``rows`` (the packed tensors it returns are not read)."""

    def __init__(self, rows: PackedRows, caches: Sequence[ChunkKVCache]) -> None:
        self._rows = rows
        self._caches = caches

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, **_: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        views = []
        for (start, n), cache in zip(self._rows.spans, self._caches, strict=True):
            end = start + n
            k, v = key_states[:, :, start:end], value_states[:, :, start:end]
            views.append(cache.update(k, v, layer_idx))
        self._rows.views[layer_idx] = views
        return key_states, value_states

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0  # positions are always given; nothing derives them from the cache


def _vision(segments: Sequence[Segment]) -> dict[str, torch.Tensor]:
    """The rows' vision inputs, in row order (token type ids along the sequence)."""
    keys = {k for s in segments for k in s.vision}
    out: dict[str, torch.Tensor] = {}
    for key in sorted(keys):
        if key == "mm_token_type_ids":
            parts = [s.vision.get(key, torch.zeros_like(s.ids)) for s in segments]
            out[key] = torch.cat(parts, dim=1)
        else:
            out[key] = torch.cat([s.vision[key] for s in segments if key in s.vision], dim=0)
    return out


@torch.inference_mode()
def forward_packed(
    fwd: QwenForward, rows: Sequence[tuple[Segment, ChunkKVCache, int]]
) -> list[torch.Tensor]:
    """Append each row's segment to its cache in one forward; each row's last-token
    logits (vocab,). The caller holds ``fwd.lock``. One row: ``fwd.forward``."""
    if len(rows) == 1:
        return [fwd.forward(*rows[0])]
    if not fwd.packs:  # eager or flash attention chosen: no per-row attention there
        return [fwd.forward(*row) for row in rows]
    segments = [segment for segment, _, _ in rows]
    caches = [cache for _, cache, _ in rows]
    spans: list[tuple[int, int]] = []
    start = 0
    for segment in segments:
        spans.append((start, len(segment)))
        start += len(segment)
    packed = PackedRows(spans)
    dev = fwd.device
    positions = torch.cat([s.positions + base for s, _, base in rows], dim=1)
    kwargs: dict[str, Any] = {
        "input_ids": torch.cat([s.ids for s in segments], dim=1).to(dev),
        "position_ids": positions.unsqueeze(1).to(dev),
        "attention_mask": None,
        fwd.cache_keyword: _PackedKV(packed, caches),
        "use_cache": True,
        "logits_to_keep": torch.tensor([s + n - 1 for s, n in spans], device=dev),
    }
    for k, v in _vision(segments).items():
        kwargs[k] = v.to(dev)
    lengths = [cache.length for cache in caches]
    token = PACKED.set(packed)
    try:
        out = fwd.model(**kwargs)
    except BaseException:
        for cache, length in zip(caches, lengths, strict=True):
            cache.truncate(min(length, cache.length))  # no row keeps half a forward
        raise
    finally:
        PACKED.reset(token)
        folded_mask.cache_clear()
    return [out.logits[0, r].float() for r in range(len(rows))]


@dataclass(slots=True, eq=False)
class _Request:
    segment: Segment
    cache: ChunkKVCache
    base_position: int
    submitted: float
    logits: torch.Tensor | None = None
    error: BaseException | None = None
    batch: int = 0
    started: float = 0.0  # when its forward began (the model lock held)
    done: bool = False


class StepBatcher:
    """The one door to the model for sessions that batch (module docstring)."""

    def __init__(self, fwd: QwenForward, *, window_s: float, max_rows: int) -> None:
        self.fwd = fwd
        self.window_s = window_s
        self.max_rows = max(1, max_rows)
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._leading = False
        self._stepping = 0
        # Forwards run so far by rows (1: alone), and of them those of reply tokens only.
        self.forwards: Counter[int] = Counter()
        self.decode_forwards: Counter[int] = Counter()

    @contextlib.contextmanager
    def stepping(self) -> Iterator[None]:
        """A session is inside a step: it will bring forwards, worth waiting for."""
        with self._cond:
            self._stepping += 1
        try:
            yield
        finally:
            with self._cond:
                self._stepping -= 1
                self._cond.notify_all()  # a leader waiting for it waits no more

    def forward(
        self, segment: Segment, cache: ChunkKVCache, base_position: int
    ) -> tuple[torch.Tensor, int, float]:
        """Logits, how many rows shared the forward, ms waited before it began."""
        req = _Request(segment, cache, base_position, time.perf_counter())
        with self._cond:
            self._queue.append(req)
            self._cond.notify_all()
            while self._leading and not req.done:
                self._cond.wait()
            lead = not req.done
            if lead:
                self._leading = True
        if lead:
            try:
                while not req.done:
                    self._run(self._gather())
            finally:
                with self._cond:
                    self._leading = False
                    self._cond.notify_all()
        if req.error is not None:
            raise req.error
        assert req.logits is not None
        return req.logits, req.batch, (req.started - req.submitted) * 1000

    def _gather(self) -> list[_Request]:
        deadline = time.perf_counter() + self.window_s
        with self._cond:
            while len(self._queue) < min(self._stepping, self.max_rows):
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = self._queue[: self.max_rows]
            del self._queue[: self.max_rows]
        return batch

    def _run(self, batch: list[_Request]) -> None:
        full = [r for r in batch if r.cache.length + len(r.segment) > r.cache.capacity]
        for req in full:  # fails alone, before the forward: the others' goes on
            req.started = time.perf_counter()
            req.error = ChunkFullError(
                f"KV chunk full: {req.cache.length} + {len(req.segment)} > {req.cache.capacity}"
            )
        batch = [r for r in batch if r.error is None]
        try:
            if not batch:
                return
            with self.fwd.lock:
                started = time.perf_counter()
                shared = len(batch) if self.fwd.packs else 1  # else one forward a row
                for req in batch:
                    req.started, req.batch = started, shared
                rows = [(r.segment, r.cache, r.base_position) for r in batch]
                self.forwards[len(rows)] += 1
                if all(len(r.segment) == 1 for r in batch):
                    self.decode_forwards[len(rows)] += 1
                logits = forward_packed(self.fwd, rows)
            for req, out in zip(batch, logits, strict=True):
                req.logits = out
        except BaseException as e:  # every row of a failed forward sees its error
            for req in batch:
                req.error = e
        finally:
            with self._cond:
                for req in (*batch, *full):
                    req.done = True
                self._cond.notify_all()


class ModelLane:
    """One session's way to the model: through the batcher, or alone (batcher None,
    the model lock held for the whole step as before). Keeps the step's numbers."""

    def __init__(self, fwd: QwenForward, batcher: StepBatcher | None = None) -> None:
        self._fwd = fwd
        self._batcher = batcher
        self.batch_size = 1  # of the step's decision forward (``note_decision``)
        self.wait_ms = 0.0  # the step's waits for the model, every forward together
        self._last_batch = 1
        self._counted: AbstractContextManager[None] | None = None

    @contextlib.contextmanager
    def stepping(self) -> Iterator[None]:
        """Around the whole step, from before its turn is encoded (``leave`` ends it
        early, before work that brings no forward worth waiting for)."""
        self.batch_size, self.wait_ms, self._last_batch = 1, 0.0, 1
        if self._batcher is not None:
            self._counted = self._batcher.stepping()
            self._counted.__enter__()
        try:
            yield
        finally:
            self.leave()

    def leave(self) -> None:
        counted, self._counted = self._counted, None
        if counted is not None:
            counted.__exit__(None, None, None)

    def holding(self) -> AbstractContextManager[Any]:
        """Around the step's forwards: the model lock when alone; a batching session
        must not hold it (the batch's leader takes it for every forward)."""
        if self._batcher is None:
            return self._timed_lock()
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def _timed_lock(self) -> Iterator[None]:
        asked = time.perf_counter()
        with self._fwd.lock:
            self.wait_ms += (time.perf_counter() - asked) * 1000
            yield

    def forward(self, segment: Segment, cache: ChunkKVCache, base_position: int) -> torch.Tensor:
        if self._batcher is None:
            return self._fwd.forward(segment, cache, base_position)
        logits, batch, waited = self._batcher.forward(segment, cache, base_position)
        self._last_batch = batch
        self.wait_ms += waited
        return logits

    def note_decision(self) -> None:
        """The forward just run was the step's decision: its batch is the step's."""
        self.batch_size = self._last_batch
