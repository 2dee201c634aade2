"""Pairing this bridge with a server, and finding how to reach a paired one.

``murmur pair`` on the server prints a one-time code and a link (also as a QR code)::

    murmur://pair?code=ABCD-EFGH&fp=<sha256 of the certificate, 64 hex>&addr=HOST:PORT&addr=…

``pair_with`` checks each address's certificate against ``fp`` *before* the code is
sent (a code sent to the wrong server is a code given away), trades the code for a
device token over TLS pinned to that certificate, and returns the ``Pairing`` to
store. ``link_options`` turns the CLI's flags and the stored pairing into
``LinkOptions`` for everything that connects.
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from mobile_bridge.connection import LinkOptions, pair
from mobile_bridge.errors import LinkError
from mobile_bridge.tls import (
    ServerPin,
    fetch_certificate,
    fingerprint,
    is_loopback,
    normalize_fingerprint,
    split_address,
)
from mobile_bridge.tokens import Pairing, find_pairing

__all__ = [
    "PAIR_FIRST",
    "ConnectFlags",
    "Invite",
    "fetch_fingerprint",
    "link_options",
    "pair_with",
    "parse_invite",
]

PAIR_FIRST = (
    "pair first: murmur-bridge pair 'murmur://pair?…' (run `murmur pair` on the server "
    "for the link), or pass --insecure for a `murmur serve --no-auth` server on this machine"
)


@dataclass(frozen=True)
class Invite:
    """A pairing code, where to use it, and the certificate to expect there."""

    code: str
    addresses: tuple[str, ...]
    fingerprint: str | None = None  # None: the person compares it (a bare code)


def parse_invite(text: str, server: str | None = None) -> Invite:
    """A ``murmur://pair?…`` link or a bare code (then ``server`` is needed); ValueError
    saying what is wrong. ``server``, when given, is tried before the link's addresses."""
    text = text.strip()
    extra = (server,) if server else ()
    if not text.lower().startswith("murmur:"):
        if not server:
            raise ValueError(
                "a bare pairing code needs --server HOST:PORT (or pass the whole "
                "murmur://pair?… link that `murmur pair` printed)"
            )
        split_address(server)
        return Invite(text, extra)
    url = urlsplit(text)
    if url.scheme.lower() != "murmur" or url.netloc.lower() != "pair":
        # (never the link itself in a message: it holds the code)
        raise ValueError(
            "not a Murmur pairing link (expected murmur://pair?code=…&fp=…&addr=…, "
            "the whole link that `murmur pair` printed)"
        )
    query = parse_qs(url.query)
    codes, fps = query.get("code", []), query.get("fp", [])
    if len(codes) != 1 or not codes[0].strip():
        raise ValueError("the pairing link has no code (expected code=…)")
    if len(fps) != 1:
        raise ValueError("the pairing link has no certificate fingerprint (expected fp=…)")
    addrs = query.get("addr", [])
    for a in addrs:
        split_address(a)
    addresses = tuple(dict.fromkeys([*extra, *addrs]))  # in order, once each
    if not addresses:
        raise ValueError("the pairing link names no server address (expected addr=HOST:PORT)")
    return Invite(codes[0].strip(), addresses, normalize_fingerprint(fps[0]))


async def fetch_fingerprint(address: str, timeout_s: float = 5.0) -> str:
    """What the server at ``address`` presents, for a person to compare."""
    pem = await fetch_certificate(address, timeout_s)
    return fingerprint(ssl.PEM_cert_to_DER_cert(pem))


async def pair_with(
    invite: Invite, device_name: str, *, expected: str | None = None, timeout_s: float = 5.0
) -> Pairing:
    """Trade ``invite``'s code for a token; the pairing to store (not yet stored).

    ``expected`` is the fingerprint when the invite carries none (a bare code, after the
    person compared it). Raises ``LinkError`` before sending the code when no address
    presents that certificate.
    """
    fp = invite.fingerprint or expected
    if fp is None:
        raise ValueError("no certificate fingerprint to pin: confirm the server's first")
    first, *rest = invite.addresses
    opts = LinkOptions(
        target=first, alternates=tuple(rest), pin=ServerPin(fp), connect_timeout_s=timeout_s
    )
    device = await pair(opts, invite.code, device_name)
    addresses = (device.target, *(a for a in invite.addresses if a != device.target))
    return Pairing(
        addresses=addresses,
        fingerprint=fp,
        certificate_pem=device.certificate_pem,
        device_id=device.device_id,
        token=device.token,
        device_name=device_name,
        paired_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )


@dataclass(frozen=True)
class ConnectFlags:
    """How the CLI was asked to connect (all optional)."""

    server: str | None = None
    token: str | None = None  # --token or $MURMUR_TOKEN
    tls: bool = False
    ca: str | None = None
    insecure: bool = False


def link_options(flags: ConnectFlags, *, default_server: str) -> LinkOptions:
    """``LinkOptions`` from the flags and the stored pairing; ``LinkError`` when there
    is no way to connect that keeps the token safe.

    - ``--insecure``: plaintext to a loopback server (``murmur serve --no-auth``); a
      stored token never travels in plaintext, so only ``--token`` is sent.
    - ``--tls`` [``--ca``]: TLS verified by the CA (a real certificate), with the
      pairing's token when there is one.
    - otherwise the pairing: its addresses (``--server`` first), TLS pinned to its
      certificate, its token.
    """
    if flags.insecure:
        target = flags.server or default_server
        if not is_loopback(target):
            raise LinkError(
                f"--insecure talks plaintext to this machine only, not {target}: a Murmur "
                f"server elsewhere speaks TLS; pair with it (murmur-bridge pair …)"
            )
        return LinkOptions(target=target, token=flags.token)
    try:
        pairing = find_pairing(flags.server)
    except ValueError as e:
        raise LinkError(str(e)) from e
    if flags.tls or flags.ca:
        verified_at = flags.server or (pairing.addresses[0] if pairing else None)
        if verified_at is None:
            raise LinkError(f"--tls needs --server HOST:PORT; or {PAIR_FIRST}")
        token = flags.token or (pairing.token if pairing else None)
        return LinkOptions(target=verified_at, token=token, tls=True, ca_file=flags.ca)
    if pairing is None:
        where = f"this bridge is not paired with {flags.server}; " if flags.server else ""
        raise LinkError(where + PAIR_FIRST)
    addresses = pairing.addresses
    if flags.server:
        addresses = (flags.server, *(a for a in addresses if a != flags.server))
    first, *rest = addresses
    return LinkOptions(
        target=first,
        alternates=tuple(rest),
        token=flags.token or pairing.token,
        pin=pairing.pin,
    )
