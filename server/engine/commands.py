"""What the user's words do, decided before the model sees them.

Spoken and typed commands work in every mode ("quiet", "never mind", "switch to
blind mode"), even when the model is busy or wrong. ``decide`` is pure: text in,
``Effects`` out; the session carries the effects out. Mode names come from the
profiles (``ModeProfile.spoken_names``), never from a list written here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from server.events import Mode
from server.modes import MODES, ModeProfile

__all__ = ["Effects", "decide"]


@dataclass(frozen=True, slots=True)
class Effects:
    stop_speaking: bool = False
    cancel_delegations: str = ""  # non-empty: cancel what runs, for this reason
    set_mode: Mode | None = None
    query: str | None = None  # what, if anything, goes on to the model


_QUIET = re.compile(r"^(quiet|stop|shh+|be quiet|stop talking|silence)[.!]?$", re.I)
_NEVER_MIND = re.compile(r"^(never ?mind|forget it|cancel( that)?)[.!]?$", re.I)
_MODE_VERBS = r"(?:switch to|change to|go to|start|use|enter)?\s*"
_MAX_COMMAND_WORDS = 6  # "please switch to blind assistance mode now" is a command; a story is not


def _mode_pattern(profiles: Mapping[Mode, ModeProfile]) -> tuple[re.Pattern[str], dict[str, Mode]]:
    names = {n.lower(): m for m, p in profiles.items() for n in p.spoken_names}
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"\b{_MODE_VERBS}({alternatives}) mode\b", re.I), names


_DEFAULT_MODE_PATTERN = _mode_pattern(MODES)


def decide(text: str, profiles: Mapping[Mode, ModeProfile] | None = None) -> Effects:
    """The effects of a final transcript or typed text.

    A new question cancels the background answer still running: the user has
    moved on, and two answers would arrive out of order.
    """
    t = " ".join(text.split())
    if not t:
        return Effects()
    if _QUIET.match(t):
        return Effects(stop_speaking=True)
    if _NEVER_MIND.match(t):
        return Effects(stop_speaking=True, cancel_delegations="never mind")
    pattern, names = _DEFAULT_MODE_PATTERN if profiles is None else _mode_pattern(profiles)
    m = pattern.search(t)
    if m and len(t.split()) <= _MAX_COMMAND_WORDS:
        return Effects(set_mode=names[m.group(1).lower()], cancel_delegations="mode change")
    return Effects(cancel_delegations="new question", query=t)
