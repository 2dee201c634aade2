"""The one table from errors to gRPC status codes (DESIGN §3), and how each call ends.

Every ``Converse`` and ``Pair`` call ends through ``ending_for``: a status for the
client and a log level for the server, decided here and nowhere else.

================================================  =====================  =========
what happened                                     status                 logged at
================================================  =====================  =========
first message not session_start, not protobuf,    INVALID_ARGUMENT       INFO
  bad values (``ProtocolError``)
a message over ``max_message_bytes`` (gRPC's own   RESOURCE_EXHAUSTED     (gRPC)
  limit, set to it in server.py)
server full (``CapacityError``), pairing limited  RESOURCE_EXHAUSTED     INFO
no session_start within                           DEADLINE_EXCEEDED      INFO
  ``first_message_timeout_s``; a session silent
  for ``idle_timeout_s`` (``TimedOutError``;
  a ``session.idle`` Notice goes first)
no or revoked device token                        UNAUTHENTICATED        INFO
resume token of another device, bad pairing code  PERMISSION_DENIED      INFO
a newer connection took the session over          ABORTED                INFO
model or registry unavailable, server stopping    UNAVAILABLE            INFO
Pair on a server without pairing                  UNIMPLEMENTED          INFO
the client vanished (``StreamClosed``, gRPC's     none (nobody listens)  INFO
  own errors on a broken call)
any other error: a bug                            INTERNAL               ERROR
================================================  =====================  =========

After ``session_start`` a message that is not valid protobuf, or breaks the contract
in a way the session survives, is dropped with a ``protocol.*`` Notice instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc

from server.errors import (
    CapacityError,
    Fatal,
    MurmurError,
    NotOfferedError,
    PairingDenied,
    PairingMalformed,
    PairingRateLimited,
    ProtocolError,
    ResumeRefusedError,
    StorageError,
    StreamClosed,
    TakenOverError,
    TimedOutError,
    UnauthenticatedError,
    UnavailableError,
)

__all__ = ["STATUS_FOR", "Ending", "ending_for", "status_for"]

STATUS_FOR: dict[type[Fatal], grpc.StatusCode] = {
    ProtocolError: grpc.StatusCode.INVALID_ARGUMENT,
    TimedOutError: grpc.StatusCode.DEADLINE_EXCEEDED,
    UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    TakenOverError: grpc.StatusCode.ABORTED,
    ResumeRefusedError: grpc.StatusCode.PERMISSION_DENIED,
    CapacityError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    UnavailableError: grpc.StatusCode.UNAVAILABLE,
    PairingMalformed: grpc.StatusCode.INVALID_ARGUMENT,
    PairingDenied: grpc.StatusCode.PERMISSION_DENIED,
    PairingRateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    StorageError: grpc.StatusCode.UNAVAILABLE,
    NotOfferedError: grpc.StatusCode.UNIMPLEMENTED,
}


def status_for(error: BaseException) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        code = STATUS_FOR.get(cls)  # type: ignore[call-overload]
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


@dataclass(frozen=True, slots=True)
class Ending:
    """How a call ends: ``code`` None when the client is gone (no status can reach it)."""

    code: grpc.StatusCode | None
    details: str
    level: int  # for the server's log line
    crash: bool = False  # log with the traceback: a bug


def ending_for(error: BaseException) -> Ending:
    if isinstance(error, Fatal):
        return Ending(status_for(error), error.message, logging.INFO)
    if isinstance(error, StreamClosed) or _broken_call(error):
        # The client vanished (its network dropped, the app was killed): not a crash.
        return Ending(None, "the client went away", logging.INFO)
    if isinstance(error, MurmurError):
        return Ending(grpc.StatusCode.INTERNAL, error.message, logging.ERROR, crash=True)
    return Ending(
        grpc.StatusCode.INTERNAL,
        f"internal error ({type(error).__name__}); see the server log",
        logging.ERROR,
        crash=True,
    )


def _broken_call(error: BaseException) -> bool:
    """gRPC's own errors from a call that is already over (a failed batch, "RPC
    already finished"); an abort is not one of them."""
    return isinstance(error, grpc.aio.BaseError) and not isinstance(error, grpc.aio.AbortError)
