"""The session's outbound queue, routed by each event type's lane (``events.Lane``).

Data events (captions, audio packets, traces) wait their turn, and a full queue
makes the producer wait — backpressure reaches TTS instead of memory. An
immediate event (``StopSpeaking``, ``GoAway``) goes to the head at once and never
waits for room: a cut must not wait behind the very audio it cuts, so a
``StopSpeaking`` also drops the queued packets of the utterances it names.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import cast

from server.events import Lane, ServerEvent, StopSpeaking

__all__ = ["END", "Outbox"]

END = object()  # the writer's sentinel: everything queued before it has been sent


class Outbox:
    def __init__(self, maxsize: int) -> None:
        self._items: deque[object] = deque()
        self._urgent: deque[ServerEvent] = deque()
        self._max = max(1, maxsize)
        self._has_room = asyncio.Event()
        self._has_room.set()
        self._ready = asyncio.Event()
        self.dropped = 0  # data events refused by put_nowait on a full queue

    async def put(self, item: ServerEvent | object) -> None:
        """Queue ``item``; waits for room unless its lane is immediate."""
        if item is not END and cast(ServerEvent, item).lane is Lane.IMMEDIATE:
            self._immediate(cast(ServerEvent, item))
            return
        while len(self._items) >= self._max:
            self._has_room.clear()
            await self._has_room.wait()
        self._append(item)

    def put_nowait(self, event: ServerEvent) -> bool:
        """Queue ``event`` without waiting, for callers that cannot (sync callbacks).

        Immediate events always go; a data event finds room or is dropped (and
        counted), never blocking its caller. False when it was dropped.
        """
        if event.lane is Lane.IMMEDIATE:
            self._immediate(event)
            return True
        if len(self._items) >= self._max:
            self.dropped += 1
            return False
        self._append(event)
        return True

    def _append(self, item: object) -> None:
        self._items.append(item)
        self._ready.set()

    def _immediate(self, event: ServerEvent) -> None:
        if isinstance(event, StopSpeaking) and event.utterance_ids:
            cut = set(event.utterance_ids)
            # The speech lane's events (audio packets) of a cut utterance are dropped.
            kept = [
                i
                for i in self._items
                if not (i is not END and _lane(i) is Lane.SPEECH and _utterance(i) in cut)
            ]
            self._items = deque(kept)
            self._has_room.set()
        self._urgent.append(event)
        self._ready.set()

    def clear(self, keep: tuple[type[ServerEvent], ...] = ()) -> list[ServerEvent]:
        """Empty the queue (it was for a stream that is gone) and return the queued
        events whose type is in ``keep``, in order: state the next stream's client
        still needs (how a delegation ended, a notice), where speech and traces are
        stale."""
        kept = [
            cast(ServerEvent, i)
            for i in (*self._urgent, *self._items)
            if i is not END and isinstance(i, keep)
        ]
        self._items.clear()
        self._urgent.clear()
        self._has_room.set()
        return kept

    async def get(self) -> object:
        while True:
            if self._urgent:
                return self._urgent.popleft()
            if self._items:
                item = self._items.popleft()
                self._has_room.set()
                return item
            self._ready.clear()
            await self._ready.wait()

    def __len__(self) -> int:
        return len(self._items) + len(self._urgent)


def _lane(item: object) -> Lane:
    return cast(ServerEvent, item).lane


def _utterance(item: object) -> str:
    return getattr(item, "utterance_id", "")  # every speech-lane event names its utterance
