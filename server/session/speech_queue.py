"""What waits to be said: its order, what goes stale, what a newer alert replaces.

The speaker plays; this decides which waiting utterance is next. Highest priority
first; at equal priority an alert before anything else, then first come first
served (``say_after`` and ``NoteOrder`` rely on that for a reply's parts). Anything
but an alert goes stale (``Utterance.expires_at``); an alert waits until it plays,
unless a newer alert about the same thing (``Utterance.topic``) takes its place.

The queue only removes and returns: the speaker resolves what it hands back and
counts it, so every utterance that did not play out is in one tally.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar

from server.engine.policy import Utterance
from server.events import SpeechKind

__all__ = ["SpeechQueue", "Waiting"]


class Waiting(Protocol):
    @property
    def utterance(self) -> Utterance: ...


W = TypeVar("W", bound=Waiting)


class SpeechQueue(Generic[W]):
    def __init__(self) -> None:
        self._heap: list[tuple[int, int, int, W]] = []  # (-priority, alert first, order, item)
        self._order = itertools.count()

    def push(self, item: W) -> list[W]:
        """Queue ``item``; returns the waiting alerts it supersedes (same topic), removed."""
        utt = item.utterance
        superseded = self.take(lambda w: _same_topic(w.utterance, utt))
        alert = utt.kind is SpeechKind.ALERT
        heapq.heappush(self._heap, (-utt.priority, 0 if alert else 1, next(self._order), item))
        return superseded

    def pop(self, now: float) -> tuple[W | None, list[W]]:
        """The next to play (None: nothing waits), and what went stale before it (removed)."""
        stale: list[W] = []
        while self._heap:
            *_, item = heapq.heappop(self._heap)
            if item.utterance.expires_at >= now:
                return item, stale
            stale.append(item)
        return None, stale

    def remove(self, item: W) -> bool:
        """Take ``item`` out if it waits; False if it does not."""
        return bool(self.take(lambda w: w is item))

    def take(self, which: Callable[[W], bool]) -> list[W]:
        """Remove and return, in queue order, every waiting item ``which`` picks."""
        kept: list[tuple[int, int, int, W]] = []
        taken: list[tuple[int, int, int, W]] = []
        for q in self._heap:
            (taken if which(q[3]) else kept).append(q)
        if taken:
            self._heap = kept
            heapq.heapify(self._heap)
        return [q[3] for q in sorted(taken)]

    def __iter__(self) -> Iterator[W]:
        return iter([q[3] for q in sorted(self._heap)])

    def __len__(self) -> int:
        return len(self._heap)


def _same_topic(waiting: Utterance, new: Utterance) -> bool:
    return (
        new.kind is SpeechKind.ALERT
        and waiting.kind is SpeechKind.ALERT
        and bool(new.topic)
        and waiting.topic == new.topic
    )
