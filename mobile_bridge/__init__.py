"""The phone side of Murmur: media sources, the gRPC link, file replay, the CLI.

It speaks to the server only through the generated contract (``murmur.v1``);
it never imports ``server``.
"""

from mobile_bridge.link import CLIENT_NAME, __version__

__all__ = ["CLIENT_NAME", "__version__"]
