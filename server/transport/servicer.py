"""The ``Companion`` servicer: thin. It authenticates, reads the first message,
hands the stream to a ``Session`` and maps fatal errors to a status — nothing more.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from murmur.v1 import companion_pb2 as pb
from murmur.v1 import companion_pb2_grpc as pb_grpc

from server.codes import Code
from server.errors import (
    CapacityError,
    Fatal,
    MurmurError,
    ProtocolError,
    StreamClosed,
    UnauthenticatedError,
)
from server.events import ClientEvent, Notice, ServerEvent
from server.session.registry import SessionRegistry
from server.session.services import SessionServices
from server.session.session import Session
from server.transport import convert
from server.transport.auth import DeviceGate, TokenVerifier, authenticate, peer_host
from server.transport.status import status_for

__all__ = ["CompanionServicer"]

log = logging.getLogger(__name__)

FIRST_MESSAGE_TIMEOUT_S = 30.0
_EOF_SETTLE_S = 0.25


class _GrpcLink:
    """A session's view of the call: domain events in, domain events out.

    Only ``read()``/``write()`` are used on the call (never ``async for``), and
    only the session's writer task calls ``send``.
    """

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context
        self._unknown_noted = False
        self._held: ClientEvent | None = None  # read together with a notice about it

    async def recv(self) -> ClientEvent | Notice | None:
        """The next event; a protocol problem comes back as a Notice for the client."""
        if self._held is not None:
            held, self._held = self._held, None
            return held
        while True:
            try:
                msg = await self._context.read()
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
            unknown_fields = not self._unknown_noted and convert.has_unknown_fields(msg)
            try:
                event: ClientEvent | None = convert.from_client(msg)
            except ProtocolError as e:
                # Mid-session, one bad message is dropped; the session goes on.
                return Notice.of(Code.PROTOCOL_BAD_MESSAGE, f"{e.message}; the message was ignored")
            if unknown_fields:
                self._unknown_noted = True
                self._held = event  # None: it was an unknown event, noted by this
                return Notice.of(
                    Code.PROTOCOL_UNKNOWN_FIELDS,
                    "the client sent fields this server does not know (a newer bridge?); "
                    "they are ignored",
                )
            if event is not None:
                return event
            if not self._unknown_noted:
                self._unknown_noted = True
                return Notice.of(
                    Code.PROTOCOL_UNKNOWN_EVENT,
                    "the client sent an event this server does not know; it is ignored",
                )

    async def send(self, event: ServerEvent) -> None:
        message = convert.to_server(event)
        try:
            await self._context.write(message)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # grpc's own error (ExecuteBatchError): the call is broken
            raise StreamClosed("the call ended while a message was being sent") from e


class CompanionServicer(pb_grpc.CompanionServicer):
    def __init__(self, services: SessionServices, verifier: TokenVerifier | None = None) -> None:
        self.services = services
        self.verifier = verifier
        self.registry = SessionRegistry(services)
        self._active = 0  # Converse calls running (for wait_closed)
        self._starting = 0  # calls not past their session_start yet
        self._idle = asyncio.Event()  # no Converse call is running
        self._idle.set()

    async def Pair(
        self, request: pb.PairRequest, context: grpc.aio.ServicerContext
    ) -> pb.PairResponse:
        if not isinstance(self.verifier, DeviceGate):
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                "this server runs without pairing (murmur serve --no-auth, loopback only): "
                "connect without a token",
            )
            raise AssertionError("unreachable")
        try:
            grant = await self.verifier.pair(
                request.code, request.device_name, peer_host(context.peer())
            )
        except Fatal as e:
            await context.abort(status_for(e), e.message)
            raise AssertionError("unreachable") from None
        return pb.PairResponse(device_token=grant.token, device_id=grant.device_id)

    async def Converse(self, request_iterator, context: grpc.aio.ServicerContext) -> None:  # type: ignore[no-untyped-def,override]
        # request_iterator is unused on purpose: reading goes through context.read().
        limit = self.services.settings.server.max_sessions
        self._active += 1
        self._idle.clear()
        starting = False
        try:
            device_id = await authenticate(context, self.verifier)
            # The session limit is the registry's: only it knows whether this call
            # resumes a session or takes over one of the same device's, and those need
            # no new slot. Here only calls still waiting for session_start (each may
            # wait 30 s) are bounded, counted before the first await.
            if self._starting >= limit:
                raise CapacityError(
                    f"too many calls are opening at once (as many as [server] max_sessions = "
                    f"{limit}); try again in a moment"
                )
            self._starting += 1
            starting = True
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
            self._starting -= 1
            starting = False
            log.info("call from %r (mode %s)", start.client_name, start.mode)
            await self.registry.connect(_GrpcLink(context), start, device_id)
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
            if starting:
                self._starting -= 1
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    @property
    def sessions(self) -> set[Session]:
        """Every session of the process, attached to a call or waiting for a resume."""
        return self.registry.sessions

    def end_devices(self, device_ids: frozenset[str], message: str) -> dict[str, int]:
        """End every session of the (revoked) ``device_ids`` with UNAUTHENTICATED;
        how many per device, newly ended."""
        return self.registry.end_devices(device_ids, UnauthenticatedError(message))

    async def wait_closed(self, timeout_s: float) -> bool:
        """Wait until every session has finished its cleanup; False on timeout."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def drain(self, reconnect_after_ms: int = 2000) -> None:
        """Tell every live session to reconnect elsewhere (or here, after a restart)."""
        self.registry.go_away(reconnect_after_ms, "server draining")
