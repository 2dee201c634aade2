"""Logging set-up. Privacy by default: log what happened, never what was seen or said.

Two formats (``[server] log_format``): ``text``, one readable line a record, and
``json``, one object a line for a log collector, carrying the session's and the
device's ids when the record was logged on a session's behalf. Those ids come from
context variables a session's call sets (``bind_log_context``): every task the call
and its session start inherits them, so no log call has to pass them along. A JSON
line holds fixed fields only (no ``extra``): nothing reaches it that a text line
would not show, and never a token.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

__all__ = ["LOG_FORMATS", "JsonFormatter", "bind_log_context", "setup_logging"]

_TEXT = "%(asctime)s %(levelname)-5s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")

_session: ContextVar[str] = ContextVar("murmur_log_session", default="")
_device: ContextVar[str] = ContextVar("murmur_log_device", default="")


def bind_log_context(*, session: str | None = None, device: str | None = None) -> None:
    """Name the session and device of this task's log records (and its new tasks')."""
    if session is not None:
        _session.set(session)
    if device is not None:
        _device.set(device)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts (UTC), level, logger, message; session and device
    when known; exc for a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, str] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if session := _session.get():
            out["session"] = session
        if device := _device.get():
            out["device"] = device
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
    if fmt not in LOG_FORMATS:
        logging.getLogger(__name__).warning(
            "unknown [server] log_format %r (known: %s); logging as text",
            fmt,
            ", ".join(LOG_FORMATS),
        )
    # httpx logs every request at info, and grpc's Python loggers (grpc.*) would add
    # their own lines; at warning a server log holds Murmur's lines and real trouble.
    # (grpc's C core logs on its own, set by GRPC_VERBOSITY, not here.)
    for chatty in ("httpx", "grpc"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
