"""Device-token authentication for ``Converse``.

The seam is here now; pairing (codes traded for tokens, a SQLite device registry)
plugs in a real ``TokenVerifier``. With none configured every client is accepted —
fine on loopback, and the server warns when it listens beyond it.
"""

from __future__ import annotations

from typing import Protocol

import grpc

from server.errors import UnauthenticatedError

__all__ = ["TokenVerifier", "authenticate"]


class TokenVerifier(Protocol):
    def verify(self, token: str) -> str | None:
        """The device id for a valid token, else None."""


def authenticate(context: grpc.aio.ServicerContext, verifier: TokenVerifier | None) -> str:
    """The calling device's id; raises ``UnauthenticatedError`` with what to do."""
    if verifier is None:
        return "anonymous"
    md = dict(context.invocation_metadata() or ())
    header = md.get("authorization", "")
    if not isinstance(header, str) or not header.lower().startswith("bearer "):
        raise UnauthenticatedError(
            "missing device token: send 'authorization: Bearer <token>' metadata; "
            "pair the bridge first with `murmur-bridge pair`"
        )
    device = verifier.verify(header[7:].strip())
    if device is None:
        raise UnauthenticatedError("the device token is not valid; pair the bridge again")
    return device
