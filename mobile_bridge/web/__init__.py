"""The phone page: ``murmur-bridge web`` serves it and relays it to a Murmur server.

``relay`` (the aiohttp app, one ``PageRelay`` per page), ``page`` (the page as a
``GlassesSource`` and a ``SpeechSink`` for an unchanged ``BridgeSession``), ``wire``
(the WebSocket vocabulary), ``command`` (the subcommand), ``static/`` (the page).
"""

from __future__ import annotations

__all__: list[str] = []
