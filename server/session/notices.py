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

    async def send(
        self,
        code: Code,
        message: str,
        *,
        component: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        await self.forward(Notice(*self._fields(code, message, component, retryable)))

    def send_nowait(self, code: Code, message: str, *, retryable: bool | None = None) -> None:
        """From a synchronous callback on the loop: never waits, dropped if the queue is full."""
        notice = Notice(*self._fields(code, message, None, retryable))
        if self._out.put_nowait(notice):
            self.sent += 1

    async def once(self, code: Code, message: str) -> None:
        """Only the first time this session sees ``code``."""
        if code not in self._once:
            self._once.add(code)
            await self.send(code, message)

    async def error(self, e: Recoverable) -> None:
        await self.send(e.code, e.message, component=e.component, retryable=e.retryable)

    async def forward(self, notice: Notice) -> None:
        """A Notice another part built (the listener, the transport)."""
        self.sent += 1
        await self._out.put(notice)

    @staticmethod
    def _fields(
        code: Code, message: str, component: str | None, retryable: bool | None
    ) -> tuple[str, str, str, bool]:
        e = Recoverable(code, message, component=component, retryable=retryable)
        return e.code, e.message, e.component, e.retryable
