"""The ``Companion`` servicer: thin. It authenticates, reads the first message,
hands the stream to a ``Session`` and maps fatal errors to a status — nothing more.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from murmur.v1 import companion_pb2 as pb
from murmur.v1 import companion_pb2_grpc as pb_grpc

from server.errors import CapacityError, Fatal, MurmurError, ProtocolError
from server.events import ClientEvent, ServerEvent
from server.session.session import Session, SessionServices
from server.transport import convert
from server.transport.auth import TokenVerifier, authenticate
from server.transport.status import status_for

__all__ = ["CompanionServicer"]

log = logging.getLogger(__name__)

FIRST_MESSAGE_TIMEOUT_S = 30.0


class _GrpcLink:
    """A session's view of the call: domain events in, domain events out.

    Only ``read()``/``write()`` are used on the call (never ``async for``), and
    only the session's writer task calls ``send``.
    """

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context
        self._unknown_noted = False
        self.session: Session | None = None

    async def _on_notice(self, code: str, message: str) -> None:
        if self.session is not None:
            await self.session.notice(code, message, "protocol")

    async def recv(self) -> ClientEvent | None:
        while True:
            msg = await self._context.read()
            if msg is grpc.aio.EOF:
                return None
            if not self._unknown_noted and convert.has_unknown_fields(msg):
                self._unknown_noted = True
                await self._on_notice(
                    "protocol.unknown_fields",
                    "the client sent fields this server does not know (a newer bridge?); "
                    "they are ignored",
                )
            try:
                event = convert.from_client(msg)
            except ProtocolError as e:
                # Mid-session, one bad message is dropped; the session goes on.
                await self._on_notice(
                    "protocol.bad_message", f"{e.message}; the message was ignored"
                )
                continue
            if event is not None:
                return event
            if not self._unknown_noted:
                self._unknown_noted = True
                await self._on_notice(
                    "protocol.unknown_event",
                    "the client sent an event this server does not know; it is ignored",
                )

    async def send(self, event: ServerEvent) -> None:
        await self._context.write(convert.to_server(event))


class CompanionServicer(pb_grpc.CompanionServicer):
    def __init__(self, services: SessionServices, verifier: TokenVerifier | None = None) -> None:
        self.services = services
        self.verifier = verifier
        self.sessions: set[Session] = set()
        self._active = 0  # streams holding a session slot (including ones still starting)

    async def Pair(
        self, request: pb.PairRequest, context: grpc.aio.ServicerContext
    ) -> pb.PairResponse:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "pairing is not enabled on this server yet; connect without a token on a trusted network",
        )
        raise AssertionError("unreachable")

    async def Converse(self, request_iterator, context: grpc.aio.ServicerContext) -> None:  # type: ignore[no-untyped-def,override]
        # request_iterator is unused on purpose: reading goes through context.read().
        limit = self.services.settings.server.max_sessions
        reserved = False
        try:
            authenticate(context, self.verifier)
            # Reserve the slot before the first await: simultaneous connections
            # cannot all slip under the limit.
            if self._active >= limit:
                raise CapacityError(
                    f"the server is at its limit of {limit} sessions; "
                    "try again later or raise [server] max_sessions"
                )
            self._active += 1
            reserved = True
            try:
                async with asyncio.timeout(FIRST_MESSAGE_TIMEOUT_S):
                    first = await context.read()
            except TimeoutError:
                raise ProtocolError(
                    f"no session_start within {FIRST_MESSAGE_TIMEOUT_S:.0f} s of opening the stream"
                ) from None
            if first is grpc.aio.EOF:
                raise ProtocolError("the stream ended before session_start was sent")
            start = convert.session_start(first)
            link = _GrpcLink(context)
            session = link.session = await Session.open(self.services, link, start)
            self.sessions.add(session)
            log.info(
                "session %s started (mode %s, client %r)", session.id, start.mode, start.client_name
            )
            try:
                await session.run()
            finally:
                self.sessions.discard(session)
                log.info("session %s ended (%s)", session.id, session.stats)
        except Fatal as e:
            await context.abort(status_for(e), e.message)
        except MurmurError as e:
            log.exception("session failed")
            await context.abort(grpc.StatusCode.INTERNAL, e.message)
        except Exception as e:  # a bug: the client gets INTERNAL, the log gets the trace
            if isinstance(e, grpc.aio.AbortError):
                raise
            log.exception("session failed unexpectedly")
            await context.abort(
                grpc.StatusCode.INTERNAL, f"internal error ({type(e).__name__}); see the server log"
            )
        finally:
            if reserved:
                self._active -= 1

    def drain(self, reconnect_after_ms: int = 2000) -> None:
        """Tell every live session to reconnect elsewhere (or here, after a restart)."""
        for session in list(self.sessions):
            session.go_away(reconnect_after_ms, "server draining")
