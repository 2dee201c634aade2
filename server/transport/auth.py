"""Device-token authentication for ``Converse``, and the seam pairing plugs into.

With no verifier (development: ``murmur serve --no-auth`` on loopback, and the test
harness) every client is accepted as ``anonymous``. Otherwise ``Converse`` needs
``authorization: Bearer <device token>`` metadata with a token ``Pair`` handed out.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import grpc

from server.errors import UnauthenticatedError
from server.pairing.service import DeviceGrant

__all__ = ["HOW_TO_PAIR", "DeviceGate", "TokenVerifier", "authenticate", "peer_host"]

HOW_TO_PAIR = "run `murmur pair` on the server, then `murmur-bridge pair CODE` on the phone"


class TokenVerifier(Protocol):
    async def verify(self, token: str, peer: str) -> str | None:
        """The device id for a valid token, else None."""
        ...


@runtime_checkable
class DeviceGate(TokenVerifier, Protocol):
    """What the server needs of pairing: codes for tokens, tokens checked, revocations."""

    async def pair(self, code: str, device_name: str, peer: str) -> DeviceGrant: ...

    async def revoked_ids(self) -> frozenset[str]: ...


def peer_host(peer: str) -> str:
    """'ipv4:10.0.0.5:51234' → '10.0.0.5', 'ipv6:[::1]:5' → '::1'; the port changes
    with every connection, so limits and last-seen addresses use the host."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return rest[1:].partition("]")[0]
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    return peer


async def authenticate(context: grpc.aio.ServicerContext, verifier: TokenVerifier | None) -> str:
    """The calling device's id; raises ``UnauthenticatedError`` with what to do."""
    if verifier is None:
        return "anonymous"
    md = dict(context.invocation_metadata() or ())
    header = md.get("authorization", "")
    if not isinstance(header, str) or not header.lower().startswith("bearer "):
        raise UnauthenticatedError(
            "this server needs a device token ('authorization: Bearer <token>' metadata) "
            f"and none was sent; to pair this device, {HOW_TO_PAIR}"
        )
    device = await verifier.verify(header[7:].strip(), peer_host(context.peer()))
    if device is None:
        raise UnauthenticatedError(
            "the device token is not valid or the device was revoked; to pair it again, "
            + HOW_TO_PAIR
        )
    return device
