"""The phone side of Murmur: glasses sources, one session client, sinks, the gRPC link.

``sources/`` (where media comes from) → ``client`` (one session over ``link``) →
``sinks/`` (speaker, console) and ``report``; ``replay`` wires them for the CLI.

It speaks to the server only through the generated contract (``murmur.v1``);
it never imports ``server``.
"""

from mobile_bridge.connection import CLIENT_NAME, __version__

__all__ = ["CLIENT_NAME", "__version__"]
