"""A session's Notices: recoverable problems reported on the stream, by code."""

from __future__ import annotations

from server.codes import Code
from server.errors import Recoverable
from server.events import Notice
from server.session.outbox import Outbox

__all__ = ["Notices"]


class Notices:
    def __init__(self, out: Outbox) -> None:
        self._out = out
        self._once: set[Code] = set()
        self.sent = 0

    async def send(self, code: Code, message: str) -> None:
        await self.forward(Notice.of(code, message))

    def send_nowait(self, code: Code, message: str) -> None:
        """From a synchronous callback on the loop: never waits, dropped if the queue is full."""
        if self._out.put_nowait(Notice.of(code, message)):
            self.sent += 1

    async def once(self, code: Code, message: str) -> None:
        """Only the first time this session sees ``code``."""
        if code not in self._once:
            self._once.add(code)
            await self.send(code, message)

    async def error(self, e: Recoverable) -> None:
        # A Recoverable may say more than the table (an agent's own retryability).
        await self.forward(Notice(e.code, e.message, e.component, e.retryable))

    async def forward(self, notice: Notice) -> None:
        """A Notice another part built (the listener, the transport)."""
        self.sent += 1
        await self._out.put(notice)
