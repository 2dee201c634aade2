"""A chunk of ticks as the KV cache holds it: turns, ids fed, ids pending, positions.

The canonical assistant turn of a tick is kept as *pending* ids, fed in front of
the next tick's turn: until then a speech cut can rewrite it for free, and the
cache always equals what a full recompute of the rendered turns would hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from server.runtime.actions import RESPONSE, SILENCE_MARK
from server.runtime.prompt import Message
from server.runtime.transformers.forward import IM_END, QwenForward, Segment
from server.runtime.transformers.kv_cache import ChunkKVCache

__all__ = ["ChunkTurn", "KVChunk", "Mark", "MarkerIds", "Run"]

# How a forward reaches the model: ``QwenForward.forward``, or a session's lane
# through the batcher (batch.py). Same arguments, same logits.
Run = Callable[[Segment, ChunkKVCache, int], torch.Tensor]


@dataclass(frozen=True, slots=True)
class MarkerIds:
    """The action markers as token ids, and what they share before they differ."""

    silence: list[int]
    response: list[int]
    common: list[int]  # fed with the user turn, before deciding
    end: list[int]  # <|im_end|>\n

    @classmethod
    def of(cls, fwd: QwenForward) -> MarkerIds:
        silence, response = fwd.tokenize(SILENCE_MARK), fwd.tokenize(RESPONSE)
        d = 0
        while silence[d] == response[d]:
            d += 1  # the markers cannot be prefixes of one another
        return cls(silence, response, silence[:d], fwd.tokenize(f"{IM_END}\n"))


@dataclass(slots=True)
class Mark:
    length: int
    position: int


@dataclass(slots=True)
class ChunkTurn:
    role: str
    text: str
    image: Image.Image | None = None


@dataclass(slots=True)
class KVChunk:
    """The current chunk; every method that feeds runs under ``fwd.lock``, or is
    given a ``run`` that takes it (a batching session's lane)."""

    fwd: QwenForward
    cache: ChunkKVCache
    system: ChunkTurn
    system_ids: list[int]
    turns: list[ChunkTurn] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)  # fed into the cache, in order
    pending: list[int] = field(default_factory=list)  # known to come next, not fed yet
    position: int = 0  # next rotary position
    system_mark: Mark | None = None

    def __post_init__(self) -> None:
        self.turns = [self.system]

    @property
    def capacity(self) -> int:
        return self.cache.capacity

    def free(self) -> int:
        return self.cache.capacity - self.cache.length

    def feed(self, segment: Segment, run: Run | None = None) -> torch.Tensor:
        """Pending ids, then ``segment``, into the cache; the last token's logits."""
        if self.pending:
            segment = self.fwd.join(self.fwd.text_segment(self.pending), segment)
        logits = (run or self.fwd.forward)(segment, self.cache, self.position)
        self.ids.extend(segment.ids[0].tolist())
        self.position += int(segment.positions.max()) + 1
        self.pending = []
        return logits

    def feed_ids(self, ids: list[int], run: Run | None = None) -> torch.Tensor:
        return self.feed(self.fwd.text_segment(ids), run)

    def mark(self) -> Mark:
        return Mark(self.cache.length, self.position)

    def rewind(self, mark: Mark) -> None:
        self.cache.truncate(mark.length)
        del self.ids[mark.length :]
        self.position = mark.position
        self.pending = []

    def ensure_system(self, run: Run | None = None) -> None:
        if self.system_mark is None:
            self.feed_ids(self.system_ids, run)
            self.system_mark = self.mark()

    def restart(self) -> None:
        """A new chunk over the same buffers, from just after the cached system prompt."""
        if self.system_mark is not None:
            self.rewind(self.system_mark)
        self.turns = [self.system]

    def messages(self) -> list[Message]:
        """The chunk as chat messages, rendered exactly as cached."""
        out: list[Message] = []
        for t in self.turns:
            content: list[dict[str, Any]] = [{"type": "text", "text": t.text}]
            if t.image is not None:
                content.append({"type": "image", "image": t.image})
            out.append({"role": t.role, "content": content})
        return out
