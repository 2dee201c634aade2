"""The pairing URI: what `murmur pair` prints and puts in its QR code.

``murmur://pair?code=ABCD-EFGH&fp=<64 hex>&addr=HOST:PORT&addr=HOST2:PORT``: query-string
encoded, ``addr`` once per address the server can be reached on. A contract shared with
the bridge (``murmur-bridge pair 'murmur://…'``): add parameters, never change these.

``page_link`` puts that URI in the fragment of the phone page's address
(``https://HOST:PORT/#pair=murmur://pair?…``, for ``murmur pair --page``): a phone's camera
app opens the page with the link filled in, and a fragment never leaves the phone, so
the code reaches no server's access log. Also a contract, with the page's app.js.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qs, quote, urlencode, urlsplit, urlunsplit

from server.pairing.tls import local_ipv4_addresses

__all__ = [
    "PAGE_FRAGMENT",
    "SCHEME",
    "page_address",
    "page_link",
    "pairing_uri",
    "parse_pairing_uri",
    "reachable_addresses",
]

SCHEME = "murmur"
PAGE_FRAGMENT = "pair="


def pairing_uri(code: str, fp: str, addresses: list[str]) -> str:
    query = [("code", code), ("fp", fp)] + [("addr", a) for a in addresses]
    # ':' and IPv6 brackets stay readable; parse_qs reads them either way.
    return f"{SCHEME}://pair?" + urlencode(query, safe=":[]", quote_via=quote)


def page_address(page: str) -> str:
    """``page`` as the base of a page link (no fragment); ValueError when it is not an
    http(s) address."""
    parts = urlsplit(page.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(
            "--page takes the phone page's address as phones reach it, e.g. "
            "https://192.168.1.20:8443/ (what `murmur-bridge web` prints)"
        )
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))


def page_link(page: str, uri: str) -> str:
    """The phone page at ``page`` (``https://HOST:PORT/``) with ``uri`` in its fragment;
    ValueError when ``page`` is not an http(s) address."""
    base = page_address(page)
    # The page takes everything after "#pair=" and decodes it: only what a fragment
    # cannot hold is escaped, which keeps the QR code small.
    return f"{base}#{PAGE_FRAGMENT}{quote(uri, safe=':/?=&')}"


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
