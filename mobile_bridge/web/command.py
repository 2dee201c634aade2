"""``murmur-bridge web [--listen ADDR]``: serve the phone page and relay it to the server.

Connects the way every other command does (the stored pairing, or ``--server`` /
``--tls`` / ``--insecure``); with no pairing yet the page offers to pair (the relay
stores the pairing as ``murmur-bridge pair`` would). On the phone itself (e.g. under
Termux) the default ``127.0.0.1:8765`` is right: browsers allow the camera and
microphone on ``http://localhost``. Anywhere else serve HTTPS (``--cert``/``--key``).

At start it prints the page's address and its QR code (a phone's camera app opens it);
with no pairing yet, how to pair by scanning: ``murmur pair --page URL`` on the server
prints a QR code that opens this page with the pairing link in its fragment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import ssl
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from mobile_bridge.pairing import ConnectFlags
from mobile_bridge.tls import is_loopback, split_address

__all__ = ["add_web_parser", "phone_url", "run_web"]

DEFAULT_LISTEN = "127.0.0.1:8765"


def add_web_parser(sub: Any, add_link_args: Callable[[argparse.ArgumentParser], None]) -> None:
    wp = sub.add_parser(
        "web",
        help="serve the phone page: any phone's browser becomes the glasses' companion",
        description="Serve the Murmur phone page and relay each page to the server over "
        "gRPC (TLS, device token, resume). The page never sees the device token.",
    )
    wp.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"where to serve the page (default {DEFAULT_LISTEN}; http only on loopback)",
    )
    wp.add_argument(
        "--url",
        metavar="URL",
        help="the page's address as phones reach it, for the QR code (default: this "
        "machine's address when listening on all of them)",
    )
    wp.add_argument("--cert", metavar="PEM", help="serve HTTPS with this certificate chain")
    wp.add_argument("--key", metavar="PEM", help="... and this private key")
    wp.add_argument(
        "--fingerprint", metavar="HEX", help="the server certificate's, for bare pairing codes"
    )
    wp.add_argument("--name", default=platform.node() or "phone", help="the device name to pair as")
    wp.add_argument("--language", default="en", help="BCP-47 language tag (default en)")
    add_link_args(wp)


def run_web(args: argparse.Namespace, default_server: str) -> int:
    try:
        from mobile_bridge.web.relay import Relay, RelayOptions, serve
    except ImportError as e:
        print(f"murmur-bridge: {e.name} is missing: pip install 'murmur[web]'", file=sys.stderr)
        return 2
    try:
        host, port = split_address(args.listen)
    except ValueError as e:
        print(f"murmur-bridge: --listen: {e}", file=sys.stderr)
        return 2
    context: ssl.SSLContext | None = None
    if args.cert or args.key:
        if not (args.cert and args.key):
            print("murmur-bridge: --cert and --key go together", file=sys.stderr)
            return 2
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    elif not is_loopback(args.listen):
        print(
            f"murmur-bridge: a page served on {args.listen} needs HTTPS (browsers give the "
            f"camera and microphone only to https:// or localhost): pass --cert and --key",
            file=sys.stderr,
        )
        return 2
    flags = ConnectFlags(
        server=args.server,
        token=args.token or os.environ.get("MURMUR_TOKEN") or None,
        tls=args.tls,
        ca=args.ca,
        insecure=args.insecure,
    )
    options = RelayOptions(
        connect=flags,
        default_server=default_server,
        fingerprint=args.fingerprint,
        device_name=args.name,
    )
    options.session.language = args.language

    async def main() -> None:
        relay = Relay(options)
        async with serve(relay, host, port, context) as served:
            url = phone_url(served, args.url)
            print(f"murmur-bridge: the phone page is at {url} (Ctrl-C stops)")
            _print_qr(url)
            if not relay.paired():
                print(
                    "Not paired yet: on the server run `murmur pair --page "
                    f"{url}` and scan its QR code with the phone's camera app.",
                )
            sys.stdout.flush()
            await asyncio.Event().wait()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        print(f"murmur-bridge: cannot serve on {args.listen}: {e}", file=sys.stderr)
        return 2
    return 0


def phone_url(served: str, explicit: str | None = None) -> str:
    """The page's address for a phone: ``explicit`` (``--url``), else ``served`` with a
    wildcard host (``0.0.0.0``, ``::``) replaced by this machine's outward address."""
    if explicit:
        return explicit
    parts = urlsplit(served)
    if parts.hostname not in ("0.0.0.0", "::"):
        return served
    host = _outward_address()
    return f"{parts.scheme}://{host}:{parts.port}{parts.path}"


def _outward_address() -> str:
    # Connecting a UDP socket sends nothing; it only picks the interface a packet
    # would leave by (no network needed, any private address will do).
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            return str(s.getsockname()[0])
    except OSError:
        return socket.gethostname()


def _print_qr(text: str) -> None:
    import segno

    segno.make(text, error="m").terminal(out=sys.stdout, compact=True)
