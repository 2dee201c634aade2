"""The server's certificate as this bridge knows it: fetched, fingerprinted, pinned.

The bridge learns the fingerprint of the server's certificate at pairing (from the
``murmur://`` link, or from the person comparing it), and from then on trusts that
one certificate and nothing else. Each connection first checks what the server
presents, so a mismatch is refused with both fingerprints instead of a bare handshake
error; gRPC then gets that certificate as its only root. Any certificate works: a
Murmur server's own self-signed one (SAN ``murmur-server``) or a CA-issued one
(``[server] tls_cert``), whose CA is never consulted.

gRPC's hostname check cannot be turned off, so the channel asks for a name the pinned
certificate holds: the address's own host when the certificate names it, else its
first name. The name only gets past that check; the fingerprint is what is trusted.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import socket
import ssl
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from mobile_bridge.errors import LinkError, fingerprint_mismatch, not_tls

__all__ = [
    "SERVER_NAME",
    "ServerPin",
    "fetch_certificate",
    "fingerprint",
    "is_loopback",
    "normalize_fingerprint",
    "pinned_credentials",
    "server_name",
    "split_address",
    "verify_pin",
]

SERVER_NAME = "murmur-server"  # the name in every Murmur server's own certificate
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ServerPin:
    """The certificate this bridge trusts for one server (learned at pairing)."""

    fingerprint: str  # lowercase hex sha256 of the certificate's DER bytes
    certificate_pem: str = ""  # empty until the certificate was fetched (while pairing)


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def normalize_fingerprint(text: str) -> str:
    """``AB:CD …`` or ``abcd…`` → 64 lowercase hex digits; ValueError otherwise."""
    fp = re.sub(r"[\s:]", "", text).lower()
    if not _HEX64.fullmatch(fp):
        raise ValueError(
            f"not a certificate fingerprint: {text!r} (expected 64 hex digits, "
            f"the sha256 that `murmur pair` prints)"
        )
    return fp


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port); ValueError with what is wrong."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not a server address: {address!r} (expected HOST:PORT)")
    return host.removeprefix("[").removesuffix("]"), int(port)


def is_loopback(address: str) -> bool:
    host, _ = split_address(address)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def pinned_credentials(
    pem: str, address: str
) -> tuple[grpc.ChannelCredentials, list[tuple[str, str]]]:
    """Credentials that trust only ``pem``, and the channel options that go with them
    for reaching it at ``address``. Raises ``LinkError`` when ``pem`` names no host."""
    host, _ = split_address(address)
    try:
        name = server_name(pem, host)
    except ValueError as e:  # what OpenSSL took, cryptography may still refuse
        raise LinkError(f"the certificate of the server at {address} cannot be read: {e}") from e
    if name is None:
        raise LinkError(
            f"the certificate of the server at {address} names no host (no "
            f"subjectAltName, no common name), and gRPC will not connect without one: "
            f"give the server a certificate with a subjectAltName (DNS:its.name or "
            f"IP:its.address) and pair again"
        )
    creds = grpc.ssl_channel_credentials(root_certificates=pem.encode("ascii"))
    return creds, [("grpc.ssl_target_name_override", name)]


def server_name(pem: str, host: str) -> str | None:
    """The name to check ``pem`` against when it is reached at ``host``: ``host``
    itself when the certificate names it, else the first name it holds; None when
    it holds none.

    A phone reaches one server by a LAN address one day and a tunnel the next, so
    the host often is not in the certificate; the pin, not the name, vouches for it.
    """
    cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        dns: list[str] = []
        ips: list[str] = []
    else:
        dns = [d.lower().rstrip(".") for d in san.get_values_for_type(x509.DNSName)]
        ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    if not dns and not ips:
        # gRPC, like browsers, reads the common name only when there is no SAN.
        common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        dns = [a.value.lower().rstrip(".") for a in common if isinstance(a.value, str)]
    try:
        wanted = str(ipaddress.ip_address(host))
    except ValueError:
        wanted = host.lower().rstrip(".")
        if any(_name_matches(pattern, wanted) for pattern in dns):
            return wanted
    else:
        if wanted in ips:
            return wanted
    for pattern in dns:
        # For a wildcard, a name it matches (gRPC wants a name, not a pattern).
        name = f"{SERVER_NAME}{pattern[1:]}" if pattern.startswith("*.") else pattern
        if "*" not in name:
            return name
    return ips[0] if ips else None


def _name_matches(pattern: str, name: str) -> bool:
    """Exact, or a leading ``*.`` standing for one whole label (as gRPC matches)."""
    if not pattern.startswith("*."):
        return pattern == name
    label, _, rest = name.partition(".")
    return bool(label) and rest == pattern[2:]


def _handshake(address: str, timeout_s: float) -> bytes:
    host, port = split_address(address)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        sni = host  # a proxy in front of the server may choose the certificate by it
    else:
        sni = SERVER_NAME  # SNI carries names only
    ctx = ssl.create_default_context()
    # Nothing is trusted here on purpose: the caller compares the fingerprint, and no
    # secret is sent on this connection.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])  # gRPC servers refuse a TLS client without it
    with (
        socket.create_connection((host, port), timeout=timeout_s) as raw,
        ctx.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError(f"{address} presented no certificate")
    return der


async def fetch_certificate(address: str, timeout_s: float = 5.0) -> str:
    """The PEM certificate the server at ``address`` presents, unverified.

    Raises ``LinkError``: retryable when the server cannot be reached, not when it
    answers without TLS.
    """
    try:
        der = await asyncio.to_thread(_handshake, address, timeout_s)
    except ssl.SSLError as e:
        raise LinkError(not_tls(address), grpc.StatusCode.UNAVAILABLE, str(e)) from e
    except (OSError, ValueError) as e:  # refused, unreachable, timed out, bad address
        reason = (
            "no answer" if isinstance(e, TimeoutError) else (getattr(e, "strerror", None) or str(e))
        )
        raise LinkError(
            f"cannot reach a Murmur server at {address} ({reason}). Is it running "
            f"(`murmur serve`), and is this the address `murmur pair` printed?",
            grpc.StatusCode.UNAVAILABLE,
            reason,
            retryable=not isinstance(e, ValueError),
        ) from e
    return ssl.DER_cert_to_PEM_cert(der)


async def verify_pin(address: str, pin: ServerPin, timeout_s: float = 5.0) -> str:
    """The PEM to trust for ``address``: fetched, and refused unless it matches ``pin``."""
    pem = await fetch_certificate(address, timeout_s)
    presented = fingerprint(ssl.PEM_cert_to_DER_cert(pem))
    if presented != pin.fingerprint:
        raise LinkError(fingerprint_mismatch(address, presented, pin.fingerprint))
    # The stored copy, when there is one: it is what was compared at pairing.
    return pin.certificate_pem or pem
