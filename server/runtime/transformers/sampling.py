"""Token choice and the one decode loop (replies and chunk summaries share it)."""

from __future__ import annotations

from collections.abc import Callable, Collection

import torch

__all__ = ["Sampler", "generate"]


class Sampler:
    """Greedy at temperature 0, else nucleus sampling from a seeded generator."""

    def __init__(self, temperature: float, top_p: float, seed: int) -> None:
        self.temperature = temperature
        self.top_p = top_p
        self._rng = torch.Generator().manual_seed(seed)

    def pick(self, logits: torch.Tensor) -> int:
        t = self.temperature
        if t <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / t, dim=-1).cpu()
        if self.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_p, 0) - sorted_p < self.top_p
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        return int(torch.multinomial(probs, 1, generator=self._rng))


def generate(
    logits: torch.Tensor,
    max_new: int,
    *,
    pick: Callable[[torch.Tensor], int],
    feed: Callable[[int], torch.Tensor],
    stop_ids: Collection[int],
    on_token: Callable[[list[int]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[int]:
    """Up to ``max_new`` tokens after ``logits``; ``feed`` puts one into the cache.

    Ends at a stop token, at ``max_new`` (the last token is not fed: nothing reads
    its logits), or as soon as ``should_stop`` says so (a summary preempted by the
    next tick). ``on_token`` sees the ids so far after each token (streaming).
    """
    out: list[int] = []
    while len(out) < max_new:
        if should_stop is not None and should_stop():
            break
        token = pick(logits)
        if token in stop_ids:
            break
        out.append(token)
        if on_token is not None:
            on_token(out)
        if len(out) >= max_new:
            break
        logits = feed(token)
    return out
