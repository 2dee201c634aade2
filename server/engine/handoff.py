"""The hand-over of a streamed reply from the model thread to the event loop, and
where its speech may begin.

A reply is judged a sentence at a time, not a clause at a time: "On your right," is
nothing by itself; "On your right, a cyclist is coming straight at you." is an alert.
``opening`` gathers the first clauses until they are ``ready``: a sentence ended (a
bare "Stop!" also waits for what to stop for) — whether a warning is news ("at 12
o'clock, about 2.7 metres" after "at 1 o'clock, 5 metres") is known only from the
whole of it, and a nag's first clause must not play; ``sentences`` passes the
later clauses on a sentence at a time and, when one of them is urgent where what is
being said is not, ends there and hands that sentence and the rest to ``on_urgent``
— its own utterance, with a cue and pre-emption.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from server.runtime.base import Action

__all__ = ["ClauseHandoff", "ends_sentence"]

_END = re.compile(r"[.!?…][\"'”»)\]]*\s*$")


def ends_sentence(clause: str) -> bool:
    return _END.search(clause) is not None


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

    async def opening(
        self, first: str, step: asyncio.Future[Action], ready: Callable[[str, bool], bool]
    ) -> str:
        """``first`` and the clauses after it until ``ready(text, sentence_ended)``, or
        all there are when the step ends first."""
        parts = [first]
        while not ready(" ".join(parts), ends_sentence(parts[-1])):
            more = await self.first(step)
            if more is None:
                break
            parts.append(more)
        return " ".join(parts)

    async def sentences(
        self,
        urgent: Callable[[str], bool],
        on_urgent: Callable[[str, AsyncIterator[str]], None],
    ) -> AsyncIterator[str]:
        """The clauses after the opening, a whole sentence at a time; an ``urgent`` one
        ends this stream and goes, with the clauses after it, to ``on_urgent``."""
        held: list[str] = []
        async for clause in self.rest():
            held.append(clause)
            if not ends_sentence(clause):
                continue
            sentence, held = " ".join(held), []
            if urgent(sentence):
                on_urgent(sentence, self.rest())
                return
            yield sentence
        if held:
            yield " ".join(held)
