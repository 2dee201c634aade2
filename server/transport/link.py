"""A session's view of one ``Converse`` call: wire bytes in, domain events out.

gRPC hands this link the client's messages as bytes (servicer.py registers the
method with no request deserializer), so what is not protobuf is this server's to
report: a ``protocol.bad_message`` Notice (the message is dropped, the session goes
on). A message over ``[server] max_message_bytes`` never gets here: gRPC's own limit
(server.py) ends the call with RESOURCE_EXHAUSTED, every time. Text
is cut to ``[server] max_text_bytes``; a call that sends nothing at all for
``[server] idle_timeout_s`` ends with DEADLINE_EXCEEDED after a ``session.idle``
Notice; Notices leave without internals (``notices.public``), and nothing larger than
the send limit is written (it would end the call).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import deque
from typing import cast

import grpc

from server.codes import Code
from server.config import Settings
from server.errors import IdleTimeout, ProtocolError, StreamClosed
from server.events import AskNow, ClientEvent, Notice, ServerEvent, TextIn
from server.session.notices import public
from server.transport import convert

__all__ = ["GrpcLink", "clip_utf8"]

log = logging.getLogger(__name__)

_EOF_SETTLE_S = 0.25
_NOTICE_FLUSH_S = 1.0  # how long the idle Notice gets to leave before the status


def clip_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, never inside a character."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", "ignore")


class GrpcLink:
    """Only ``read()``/``write()`` are used on the call (never ``async for``), and
    only the session's writer task calls ``send``."""

    def __init__(self, context: grpc.aio.ServicerContext, settings: Settings) -> None:
        self._context = context
        cfg = settings.server
        self._max_bytes = cfg.max_message_bytes
        self._max_text = cfg.max_text_bytes
        self._idle_s = cfg.idle_timeout_s
        self._unknown_noted = False
        self._held: deque[ClientEvent | Notice] = deque()  # read with a notice about them
        self._idle_notice = asyncio.Event()  # the session.idle Notice was written
        self._idle = False

    async def recv(self) -> ClientEvent | Notice | None:
        """The next event; a protocol problem comes back as a Notice for the client."""
        if self._held:
            return self._held.popleft()
        if self._idle:
            # The Notice saying why went to the session's outbox: let it leave first.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_NOTICE_FLUSH_S):
                    await self._idle_notice.wait()
            raise IdleTimeout(self._idle_message())
        while True:
            raw = await self._read()
            if raw is None:
                return None
            if raw is _IDLE:
                self._idle = True
                return Notice.of(Code.SESSION_IDLE, self._idle_message())
            try:
                msg = convert.parse_client(cast(bytes, raw))
                event: ClientEvent | None = convert.from_client(msg)
            except ProtocolError as e:
                # Mid-session, one bad message is dropped; the session goes on.
                return Notice.of(Code.PROTOCOL_BAD_MESSAGE, f"{e.message}; the message was ignored")
            if not self._unknown_noted and convert.has_unknown_fields(msg):
                self._unknown_noted = True
                self._hold(self._bounded(event))
                return Notice.of(
                    Code.PROTOCOL_UNKNOWN_FIELDS,
                    "the client sent fields this server does not know (a newer bridge?); "
                    "they are ignored",
                )
            if event is not None:
                self._hold(self._bounded(event))
                return self._held.popleft()
            if not self._unknown_noted:
                self._unknown_noted = True
                return Notice.of(
                    Code.PROTOCOL_UNKNOWN_EVENT,
                    "the client sent an event this server does not know; it is ignored",
                )

    async def send(self, event: ServerEvent) -> None:
        if isinstance(event, Notice):
            event = public(event)
        message = convert.to_server(event)
        size = message.ByteSize()
        if size > self._max_bytes:
            # gRPC would end the call over it; every event is bounded, so this is a bug.
            log.warning(
                "dropped a %s of %d bytes (over the send limit)", type(event).__name__, size
            )
            return
        try:
            await self._context.write(message)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # grpc's own error (ExecuteBatchError): the call is broken
            raise StreamClosed("the call ended while a message was being sent") from e
        if isinstance(event, Notice) and event.code == Code.SESSION_IDLE:
            self._idle_notice.set()

    async def _read(self) -> bytes | object | None:  # object: _IDLE
        """The next message's bytes; None at end-of-stream; ``_IDLE`` after the idle time."""
        try:
            async with asyncio.timeout(self._idle_s if self._idle_s > 0 else None):
                msg = await self._context.read()
        except TimeoutError:
            return _IDLE
        except asyncio.CancelledError:
            raise
        except Exception as e:  # grpc's own error: the call is broken
            raise StreamClosed("the call ended while a message was being read") from e
        if msg is grpc.aio.EOF:
            # A client that cancels (its network dropped, the app was killed)
            # reaches us as end-of-stream followed, a moment later, by the call's
            # cancellation; a half-close is not followed by anything. Wait that
            # moment: a cancel must park the session for resume, not end it.
            await asyncio.sleep(_EOF_SETTLE_S)
            return None
        return msg

    def _hold(self, items: list[ClientEvent | Notice]) -> None:
        self._held.extend(items)

    def _bounded(self, event: ClientEvent | None) -> list[ClientEvent | Notice]:
        """``event`` with its text cut to the limit, after a Notice saying so."""
        if event is None:
            return []
        limit = self._max_text
        if isinstance(event, TextIn):
            text, what = event.text, "a text_input"
        elif isinstance(event, AskNow):
            text, what = event.question, "an ask_now question"
        else:
            return [event]
        clipped = clip_utf8(text, limit)
        if clipped == text:
            return [event]
        size = len(text.encode("utf-8"))
        notice = Notice.of(
            Code.PROTOCOL_TEXT_TOO_LONG,
            f"{what} of {size} bytes was cut to its first {limit} bytes "
            "([server] max_text_bytes); send shorter texts",
        )
        if isinstance(event, TextIn):
            return [notice, dataclasses.replace(event, text=clipped)]
        return [notice, dataclasses.replace(event, question=clipped)]

    def _idle_message(self) -> str:
        return (
            f"nothing arrived from the client for {self._idle_s:.0f} s "
            "([server] idle_timeout_s); the session was closed — start a new one"
        )


_IDLE = object()
