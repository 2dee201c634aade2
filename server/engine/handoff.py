"""The hand-over of a streamed reply from the model thread to the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from server.runtime.base import Action

__all__ = ["ClauseHandoff"]


class ClauseHandoff:
    """Clauses handed over from the model thread, read on the loop.

    (Not to be confused with ``runtime/clauses.py``, which splits text into clauses.)
    """

    _DONE = object()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._q: asyncio.Queue[object] = asyncio.Queue()
        self.streamed: list[str] = []  # every clause handed over (read once the step is done)

    def put_threadsafe(self, clause: str) -> None:
        self.streamed.append(clause)
        self._loop.call_soon_threadsafe(self._q.put_nowait, clause)

    def close(self) -> None:
        # Runs on the loop after the step finished: every clause is already queued.
        self._q.put_nowait(self._DONE)

    async def first(self, step: asyncio.Future[Action]) -> str | None:
        """The first clause, or None if the step finished without one."""
        getter = asyncio.ensure_future(self._q.get())
        waiting: set[asyncio.Future[Any]] = {getter, step}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            item = getter.result()
            return None if item is self._DONE else str(item)
        # The step finished first; a clause may still sit in the queue.
        while not self._q.empty():
            item = self._q.get_nowait()
            if item is not self._DONE:
                return str(item)
        return None

    async def rest(self) -> AsyncIterator[str]:
        while (item := await self._q.get()) is not self._DONE:
            yield str(item)
