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
    # grpc and httpx are chatty at info.
    logging.getLogger("httpx").setLevel(logging.WARNING)
