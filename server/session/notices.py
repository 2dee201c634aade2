"""A session's Notices: recoverable problems reported on the stream, by code.

What a Notice says reaches the wearer's phone: ``public`` keeps the internals out
(object reprs with memory addresses, tracebacks) and its length bounded. It is
applied here and again where Notices leave on the wire (server/transport/servicer.py),
which also carries the engine's own.
"""

from __future__ import annotations

import dataclasses
import re

from server.codes import Code
from server.errors import Recoverable
from server.events import Notice
from server.session.outbox import Outbox

__all__ = ["MAX_NOTICE_CHARS", "Notices", "public", "public_text"]

MAX_NOTICE_CHARS = 400
# "<grpc._cython.cygrpc.SendMessageOperation object at 0x7f3d1a7679b0>",
# "<function f at 0x7f…>", "<Task pending name='x' coro=<…> at 0x…>": named by the type.
_REPR = re.compile(r"<(?:[\w.]+\.)?(\w+)(?:[^<>]|<[^<>]*>)*? at 0x[0-9a-fA-F]+>")
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
_TRACEBACK = "Traceback (most recent call last)"


def public(notice: Notice) -> Notice:
    """``notice`` with a message fit for the client (the same object when it is)."""
    message = public_text(notice.message)
    return notice if message == notice.message else dataclasses.replace(notice, message=message)


def public_text(message: str) -> str:
    """``message`` fit for the client: no reprs, addresses or tracebacks; bounded."""
    if _TRACEBACK in message:
        message = message.split(_TRACEBACK, 1)[0].rstrip(" :\n") or "an internal error"
    message = _ADDRESS.sub("…", _REPR.sub(r"\1", message))
    if len(message) > MAX_NOTICE_CHARS:
        message = message[: MAX_NOTICE_CHARS - 1] + "…"
    return message


class Notices:
    def __init__(self, out: Outbox) -> None:
        self._out = out
        self._once: set[Code] = set()
        self.sent = 0

    async def send(self, code: Code, message: str) -> None:
        await self.forward(Notice.of(code, message))

    def send_nowait(self, code: Code, message: str) -> None:
        """From a synchronous callback on the loop: never waits, dropped if the queue is full."""
        if self._out.put_nowait(public(Notice.of(code, message))):
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
        await self._out.put(public(notice))
