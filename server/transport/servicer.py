"""The ``Companion`` servicer: thin. It authenticates, reads the first message,
hands the stream to a ``Session`` and ends every call with a status — nothing more.

``add_to_server`` registers both methods with no request deserializer: the servicer
gets the client's bytes and parses them itself (convert.py), so a message that is
not protobuf is a protocol error with a clear status or Notice, not gRPC's INTERNAL.

A call ends by setting its code and details and returning, never by ``abort`` (the
status then goes out in one batch after the method returns). And before the session
writes anything the initial metadata is sent on its own: a write still in flight
when the session fails would otherwise leave gRPC thinking it unsent, the status
batch would send it a second time, gRPC's core would refuse that batch, and the
call would hang with no status at all.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from murmur.v1 import companion_pb2 as pb

from server.errors import (
    NotOfferedError,
    ProtocolError,
    TimedOutError,
    UnauthenticatedError,
)
from server.session.handover import hand_over
from server.session.registry import SessionRegistry
from server.session.services import SessionServices
from server.session.session import Session
from server.transport import convert
from server.transport.auth import DeviceGate, TokenVerifier, authenticate, peer_host
from server.transport.link import GrpcLink
from server.transport.status import ending_for

__all__ = ["CompanionServicer", "add_to_server"]

log = logging.getLogger(__name__)

SERVICE = "murmur.v1.Companion"


def add_to_server(servicer: CompanionServicer, server: grpc.aio.Server) -> None:
    """Register ``Pair`` and ``Converse`` taking raw bytes (see the module docstring)."""
    handlers = {
        "Pair": grpc.unary_unary_rpc_method_handler(
            servicer.Pair,
            request_deserializer=None,
            response_serializer=pb.PairResponse.SerializeToString,
        ),
        "Converse": grpc.stream_stream_rpc_method_handler(
            servicer.Converse,
            request_deserializer=None,
            response_serializer=pb.ServerEvent.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)


def end_call(context: grpc.aio.ServicerContext, error: BaseException, what: str) -> None:
    """Set the status ``error`` ends the call with (status.py) and log it at its level."""
    ending = ending_for(error)
    if ending.crash:
        log.log(ending.level, "%s failed", what, exc_info=error)
    else:
        log.log(ending.level, "%s ended: %s", what, ending.details)
    if ending.code is not None:
        context.set_code(ending.code)
        context.set_details(ending.details)


class CompanionServicer:
    def __init__(self, services: SessionServices, verifier: TokenVerifier | None = None) -> None:
        self.services = services
        self.verifier = verifier
        self.registry = SessionRegistry(services)
        self._active = 0  # Converse calls running (for wait_closed)
        self._idle = asyncio.Event()  # no Converse call is running
        self._idle.set()

    async def Pair(self, request: bytes, context: grpc.aio.ServicerContext) -> pb.PairResponse:
        try:
            if not isinstance(self.verifier, DeviceGate):
                raise NotOfferedError(
                    "this server runs without pairing (murmur serve --no-auth, loopback only): "
                    "connect without a token"
                )
            pair = convert.parse_pair(request)
            grant = await self.verifier.pair(pair.code, pair.device_name, peer_host(context.peer()))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            end_call(context, e, "pairing")
        else:
            return pb.PairResponse(device_token=grant.token, device_id=grant.device_id)
        return pb.PairResponse()  # not sent: the status is not OK

    async def Converse(self, request_iterator, context: grpc.aio.ServicerContext) -> None:  # type: ignore[no-untyped-def]
        # request_iterator is unused on purpose: reading goes through context.read().
        self._active += 1
        self._idle.clear()
        try:
            await self._converse(context)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            end_call(context, e, "call")
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    async def _converse(self, context: grpc.aio.ServicerContext) -> None:
        cfg = self.services.settings.server
        device_id = await authenticate(context, self.verifier)
        # No session slot is held until session_start: the registry counts sessions,
        # and a stream that sends nothing is gone after the (short) first-message
        # timeout, so any number of them cannot keep a real session from starting.
        timeout_s = cfg.first_message_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                first = await context.read()
        except TimeoutError:
            raise TimedOutError(
                f"no session_start within {timeout_s:g} s of opening the stream "
                "([server] first_message_timeout_s); send session_start first"
            ) from None
        if first is grpc.aio.EOF:
            raise ProtocolError("the stream ended before session_start was sent")
        start = convert.session_start(convert.parse_client(first))
        log.info("call from %r (mode %s)", start.client_name, start.mode)
        # Initial metadata on its own, before the session's first write (module docstring).
        await context.send_initial_metadata(())
        await self.registry.connect(GrpcLink(context, self.services.settings), start, device_id)

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

    async def hand_over(self) -> int:
        """In a fleet ([fleet] store): serve no more calls, write every session to the
        store and end its call with UNAVAILABLE, so its bridge resumes on another
        frontend (session/handover.py); how many were written. Alone: nothing, 0."""
        services = self.services
        window_s = services.settings.server.resume_window_s
        if services.handover is None or window_s <= 0:
            return 0
        self.registry.draining = True
        sessions = list(self.registry.sessions)
        return await hand_over(sessions, services.handover, window_s, services.executors.registry)

    def drain(self, reconnect_after_ms: int = 2000) -> None:
        """Tell every live session to reconnect elsewhere (or here, after a restart)."""
        self.registry.go_away(reconnect_after_ms, "server draining")
