"""The pairing URI: what `murmur pair` prints and puts in its QR code.

``murmur://pair?code=ABCD-EFGH&fp=<64 hex>&addr=HOST:PORT&addr=HOST2:PORT``: query-string
encoded, ``addr`` once per address the server can be reached on. A contract shared with
the bridge (``murmur-bridge pair 'murmur://…'``): add parameters, never change these.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from server.pairing.tls import local_ipv4_addresses

__all__ = ["SCHEME", "pairing_uri", "parse_pairing_uri", "reachable_addresses"]

SCHEME = "murmur"


def pairing_uri(code: str, fp: str, addresses: list[str]) -> str:
    query = [("code", code), ("fp", fp)] + [("addr", a) for a in addresses]
    # ':' and IPv6 brackets stay readable; parse_qs reads them either way.
    return f"{SCHEME}://pair?" + urlencode(query, safe=":[]", quote_via=quote)


def parse_pairing_uri(uri: str) -> tuple[str, str, list[str]]:
    """(code, fingerprint, addresses); ValueError when it is not a pairing URI."""
    parts = urlsplit(uri)
    if parts.scheme != SCHEME or parts.netloc != "pair":
        # (never the URI itself in a message: it holds the code)
        raise ValueError(f"not a Murmur pairing URI (expected {SCHEME}://pair?…)")
    q = parse_qs(parts.query)
    code, fp, addrs = q.get("code", [""])[0], q.get("fp", [""])[0], q.get("addr", [])
    missing = [
        name
        for name, bad in (("code", not code), ("fp", len(fp) != 64), ("addr", not addrs))
        if bad
    ]
    if missing:
        raise ValueError(f"the pairing URI lacks a valid {', '.join(missing)}")
    return code, fp, addrs


def reachable_addresses(host: str, port: int) -> list[str]:
    """HOST:PORT for each address a phone could use: for a wildcard bind, this machine's
    non-loopback IPv4 addresses (loopback only if it has none), else the bound host."""
    if host in ("", "0.0.0.0", "::"):
        hosts = local_ipv4_addresses() or ["127.0.0.1"]
    else:
        hosts = [host]
    return [f"{_bracket(h)}:{port}" for h in hosts]


def _bracket(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host  # a name
