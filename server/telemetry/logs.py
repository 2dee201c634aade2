"""Logging set-up. Privacy by default: log what happened, never what was seen or said."""

from __future__ import annotations

import logging
import sys

__all__ = ["setup_logging"]


def setup_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request at info, and grpc's Python loggers (grpc.*) would add
    # their own lines; at warning a server log holds Murmur's lines and real trouble.
    # (grpc's C core logs on its own, set by GRPC_VERBOSITY, not here.)
    for chatty in ("httpx", "grpc"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
