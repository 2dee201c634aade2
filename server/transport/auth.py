"""Device-token authentication for ``Converse``, and the seam pairing plugs into.

With no verifier (development: ``murmur serve --no-auth`` on loopback, and the test
harness) every client is accepted as ``anonymous``. Otherwise ``Converse`` needs
``authorization: Bearer <device token>`` metadata with a token ``Pair`` handed out.
"""

from __future__ import annotations

import ipaddress
from typing import Protocol, runtime_checkable
from urllib.parse import unquote

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
    """The client's address without the port, one spelling per address.

    grpc 1.85 writes peers as ``ipv4:10.0.0.5:51234`` and, percent-encoded,
    ``ipv6:%5B::1%5D:50748``. The port changes with every connection, so limits and
    last-seen addresses use the host; an IPv4 client on a dual-stack socket
    (``::ffff:10.0.0.5``) is its IPv4 address. Anything else (``unix:``) is kept.
    """
    kind, _, rest = unquote(peer).partition(":")
    if kind == "ipv6" and rest.startswith("["):
        host = rest[1:].partition("]")[0]
    elif kind == "ipv4":
        host = rest.rpartition(":")[0]
    else:
        return peer
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return peer
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


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
