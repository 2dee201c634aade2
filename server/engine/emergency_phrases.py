"""The emergency path's words, per language, as the engine reads them: what calls for
help, what answers "Are you OK?", what the model says when it sees a fall, and what
Murmur says and sends.

The words are data: ``[emergency.LANG]`` in server/modes/modes.toml, which a user's
modes file may override and extend with languages; they are checked at start
(server/modes/emergency.py). Patterns are regular expressions over *folded* text
(server/engine/emergency.py: lower case, accents dropped, as ASR often writes them, ß
as ss), one clause at a time. The modes in force are read each time a lexicon is
asked for, so a user's file put in force at start is what every session hears.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from server.modes import emergency_words

__all__ = ["Lexicon", "Line", "lexicon"]


class Line(enum.StrEnum):
    ASK = "ask"
    CLARIFY = "clarify"
    CALLING = "calling"
    CALLED = "called"
    RETRYING = "retrying"
    UNREACHABLE = "unreachable"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Lexicon:
    language: str
    alone: tuple[str, ...]  # a clause that is only this calls for help
    anywhere: tuple[str, ...]  # this anywhere in a clause calls for help
    fine: tuple[str, ...]  # an answer with this anywhere: the user is fine
    not_fine: tuple[str, ...]  # checked before ``fine``: "not OK", "no estoy bien"
    confirm: tuple[str, ...]  # an answer clause that is only this: call now
    unsure: tuple[str, ...]  # an answer clause that is only this: ask back
    model: tuple[str, ...]  # the model reporting an emergency, anywhere in its reply
    lines: Mapping[Line, str]
    # For the contacts, by name: who raised it (user, model, fall), how it went
    # (confirmed, no_answer), where (location, no_location).
    messages: Mapping[str, str]


def lexicon(language: str) -> Lexicon:
    """``language``'s words (its base language's; English when it has none)."""
    w = emergency_words(language)
    return Lexicon(
        language=w.language,
        alone=w.alone,
        anywhere=w.anywhere,
        fine=w.fine,
        not_fine=w.not_fine,
        confirm=w.confirm,
        unsure=w.unsure,
        model=w.model,
        lines={line: w.lines[line.value] for line in Line},
        messages=dict(w.messages),
    )
