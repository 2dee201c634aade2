"""The one table from session-fatal errors to gRPC status codes (DESIGN §3)."""

from __future__ import annotations

import grpc

from server.errors import (
    CapacityError,
    Fatal,
    PairingDenied,
    PairingMalformed,
    PairingRateLimited,
    ProtocolError,
    ResumeRefusedError,
    StorageError,
    TakenOverError,
    UnauthenticatedError,
    UnavailableError,
)

__all__ = ["STATUS_FOR", "status_for"]

STATUS_FOR: dict[type[Fatal], grpc.StatusCode] = {
    ProtocolError: grpc.StatusCode.INVALID_ARGUMENT,
    UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    TakenOverError: grpc.StatusCode.ABORTED,
    ResumeRefusedError: grpc.StatusCode.PERMISSION_DENIED,
    CapacityError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    UnavailableError: grpc.StatusCode.UNAVAILABLE,
    PairingMalformed: grpc.StatusCode.INVALID_ARGUMENT,
    PairingDenied: grpc.StatusCode.PERMISSION_DENIED,
    PairingRateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    StorageError: grpc.StatusCode.UNAVAILABLE,
}


def status_for(error: BaseException) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        code = STATUS_FOR.get(cls)  # type: ignore[call-overload]
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL
