"""How much text a ``Tick`` trace carries: the trace echoes the user's words and the
model's reply, and one message over the send limit would end the call."""

from __future__ import annotations

__all__ = ["TRACE_TEXT_BYTES", "trace_text"]

TRACE_TEXT_BYTES = 8192  # per text field; the send limit is megabytes


def trace_text(text: str, max_bytes: int = TRACE_TEXT_BYTES) -> str:
    """``text`` cut to ``max_bytes`` of UTF-8 (never inside a character), marked when cut."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[: max_bytes - 3].decode("utf-8", "ignore") + "…"
