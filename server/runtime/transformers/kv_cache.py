"""A preallocated, croppable KV cache for one chunk of ticks.

transformers' ``DynamicCache`` grows by ``torch.cat`` — a copy of the whole cache
on every forward — and its ``StaticCache`` attends over its full capacity on every
step. ``ChunkKVCache`` does neither: each layer owns one buffer of ``capacity``
tokens allocated once per session, a forward writes its new keys/values in place
and attention sees a view of the filled part only. Cropping (a speech cut, a
discarded reply draft, a chunk rollover) just moves the length pointer, so a
session's KV memory is fixed from its first tick to its last.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from server.telemetry.metrics import KV_CACHE_BYTES

__all__ = ["ChunkFullError", "ChunkKVCache"]


class ChunkFullError(RuntimeError):
    """A forward would write past the chunk's capacity."""


class _ChunkLayer(CacheLayerMixin):
    is_compileable = False
    is_croppable = True
    is_sliding = False

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        batch, heads = key_states.shape[:2]
        self.keys = torch.zeros(
            (batch, heads, self.capacity, key_states.shape[-1]),
            dtype=key_states.dtype,
            device=self.device,
        )
        self.values = torch.zeros(
            (batch, heads, self.capacity, value_states.shape[-1]),
            dtype=value_states.dtype,
            device=self.device,
        )
        self.is_initialized = True
        KV_CACHE_BYTES.inc(self.nbytes())

    def nbytes(self) -> int:
        if self.keys is None or self.values is None:
            return 0
        return self.keys.nbytes + self.values.nbytes

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        assert self.keys is not None and self.values is not None
        start, n = self.length, key_states.shape[-2]
        if start + n > self.capacity:
            raise ChunkFullError(f"KV chunk full: {start} + {n} > {self.capacity} tokens")
        self.keys[:, :, start : start + n].copy_(key_states)
        self.values[:, :, start : start + n].copy_(value_states)
        self.length = start + n
        return self.keys[:, :, : self.length], self.values[:, :, : self.length]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        # Called before ``update``: the keys attended are the cached ones plus the query.
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return self.capacity

    def crop(self, tokens_to_remove: int) -> None:
        # transformers' convention: a negative count of tokens to drop.
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative number of tokens to remove")
        self.length = max(0, self.length + tokens_to_remove)

    def reset(self) -> None:
        # The buffers stay allocated: the next chunk writes over them.
        self.length = 0


class ChunkKVCache(Cache):
    """One session's KV buffers: ``capacity`` tokens for every decoder layer."""

    def __init__(self, num_layers: int, capacity: int) -> None:
        self._chunk_layers = [_ChunkLayer(capacity) for _ in range(num_layers)]
        super().__init__(layers=list(self._chunk_layers))
        self.capacity = capacity

    def allocate(
        self, *, kv_heads: int, head_dim: int, dtype: torch.dtype, device: torch.device
    ) -> None:
        """Allocate every buffer now, so running out of memory happens at session start."""
        self.early_initialization(1, kv_heads, head_dim, dtype, device)

    @property
    def length(self) -> int:
        return self.get_seq_length()

    def truncate(self, length: int) -> None:
        """Forget everything from token ``length`` on."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate a {self.length}-token cache to {length}")
        for layer in self._chunk_layers:
            layer.length = length

    def release(self) -> None:
        """Drop the buffers (the session is over)."""
        for layer in self._chunk_layers:
            KV_CACHE_BYTES.dec(layer.nbytes())
            layer.keys = layer.values = None
            layer.is_initialized = False
            layer.length = 0

    def nbytes(self) -> int:
        return sum(layer.nbytes() for layer in self._chunk_layers)
