"""Spoken and typed commands that work in every mode ("quiet", "never mind",
"switch to blind mode", "what's around me?"). Recognised before the model sees the
query, so they work even when the model is busy or wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.events import Mode

__all__ = ["Command", "parse_command"]


@dataclass(frozen=True, slots=True)
class Command:
    stop_speaking: bool = False
    cancel_delegations: bool = False
    set_mode: Mode | None = None
    query: str | None = None  # what, if anything, goes on to the model


_QUIET = re.compile(r"^(quiet|stop|shh+|be quiet|stop talking|silence)[.!]?$", re.I)
_NEVER_MIND = re.compile(r"^(never ?mind|forget it|cancel( that)?)[.!]?$", re.I)
_MODE = re.compile(
    r"\b(?:switch to|change to|go to|start|use|enter)?\s*"
    r"(blind|navigation|shopping|general)(?: assistance)? mode\b",
    re.I,
)


def parse_command(text: str) -> Command:
    t = text.strip()
    if _QUIET.match(t):
        return Command(stop_speaking=True)
    if _NEVER_MIND.match(t):
        return Command(stop_speaking=True, cancel_delegations=True)
    m = _MODE.search(t)
    if m and len(t.split()) <= 6:
        return Command(set_mode=Mode(m.group(1).lower()), cancel_delegations=True)
    return Command(query=t)
