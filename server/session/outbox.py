"""The session's outbound queue: bounded for data, with a fast lane for cuts.

Ordinary events (captions, audio packets, traces) wait their turn, and a full
queue makes the producer wait — backpressure reaches TTS instead of memory. A
``StopSpeaking`` must not wait behind the very audio it cuts: ``urgent`` puts it
at the head at once and drops the queued packets of the cut utterances.
"""

from __future__ import annotations

import asyncio
from collections import deque

from server.events import AudioOut, ServerEvent

__all__ = ["Outbox"]


class Outbox:
    def __init__(self, maxsize: int) -> None:
        self._items: deque[object] = deque()
        self._urgent: deque[ServerEvent] = deque()
        self._room = asyncio.Semaphore(max(1, maxsize))
        self._ready = asyncio.Event()

    async def put(self, item: object) -> None:
        await self._room.acquire()
        self._items.append(item)
        self._ready.set()

    def urgent(self, event: ServerEvent, drop_audio_of: tuple[str, ...] = ()) -> None:
        """Send ``event`` next; queued AudioOut of ``drop_audio_of`` is never sent."""
        if drop_audio_of:
            cut = set(drop_audio_of)
            kept = [
                i for i in self._items if not (isinstance(i, AudioOut) and i.utterance_id in cut)
            ]
            for _ in range(len(self._items) - len(kept)):
                self._room.release()
            self._items = deque(kept)
        self._urgent.append(event)
        self._ready.set()

    async def get(self) -> object:
        while True:
            if self._urgent:
                return self._urgent.popleft()
            if self._items:
                item = self._items.popleft()
                self._room.release()
                return item
            self._ready.clear()
            await self._ready.wait()

    def __len__(self) -> int:
        return len(self._items) + len(self._urgent)
