"""Modes are data (DESIGN §5): ``modes.toml`` beside this file holds each mode's
standing instruction, brevity budget, cue rules, still-request rules, location rule,
names and announcements per language, and the voice commands per language; a user's
file adds modes or overrides keys (``use_modes``). The engine reads profiles;
nothing branches on a mode's name outside this package.

The modes in force are the process's, like its settings: the shipped ones from
import, replaced once at start by ``use_modes(settings' file)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from server.events import Mode
from server.modes.emergency import EmergencyWords
from server.modes.lexicons import add_things
from server.modes.loader import CommandWords, ModeData, ModeDataError, ModeProfile, load

__all__ = [
    "MODES",
    "CommandWords",
    "EmergencyWords",
    "ModeDataError",
    "ModeProfile",
    "all_modes",
    "command_words",
    "emergency_words",
    "profile",
    "use_modes",
]

# The profile each wire mode selects; updated in place, so importers keep seeing it.
MODES: dict[Mode, ModeProfile] = {}
_data: ModeData | None = None


def use_modes(user_file: str | Path | None = None) -> ModeData:
    """Load the shipped modes and ``user_file``'s over them, and put them in force.

    Raises ``ModeDataError`` (naming the file, mode and key) and changes nothing when
    either file is wrong: call it at start, before the first session.
    """
    global _data
    data = load(user_file)
    _data = data
    add_things(data.lexicon)  # a user's [lexicon.LANG] things, over the shipped lexicons
    MODES.clear()
    MODES.update(data.wire())
    return data


def _active() -> ModeData:
    return _data if _data is not None else use_modes()


def profile(mode: Mode | str) -> ModeProfile:
    """The profile for a wire mode, or for a mode's name (a user's mode too)."""
    modes = _active().modes
    if mode not in modes:
        raise KeyError(f"no mode named {mode!r}; known: {', '.join(modes)}")
    return modes[mode]


def all_modes() -> Mapping[str, ModeProfile]:
    """Every mode by name: the shipped four (or the user's overrides), then new ones."""
    return _active().modes


def command_words(language: str) -> CommandWords:
    """``language``'s command phrases (its base language, else English)."""
    return _active().words(language)


def emergency_words(language: str) -> EmergencyWords:
    """``language``'s emergency words (its base language, else English)."""
    return _active().emergency_words(language)


use_modes()
