"""Cut a reply into clauses while it is being generated, so speech starts early.

Only the spoken part of an answer is streamed: a ``<delegation>`` or
``</delegation>`` marker ends it (what follows is the question for the background
solver), and text that might be the start of a marker is held back until it is
known not to be one.

A clause is handed out only once text follows it. The clause right before a
delegation marker is the delegation *note* ("Let me look that up."), and it must
reach speech as a note (a thinking cue, its own priority), not as an answer: so
it is never streamed, and the caller speaks it from the parsed ``Action``.
"""

from __future__ import annotations

import re

from server.runtime.actions import DELEGATION_RE

__all__ = ["ClauseStream"]

_BOUNDARY = re.compile(r"[,.!?;:](?=\s)")
_MARKERS = ("</delegation>", "<delegation>", "</response>", "</silence>")


class ClauseStream:
    """Feed the whole reply text so far; get back the clauses completed since the last call."""

    def __init__(self) -> None:
        self._emitted = 0  # characters of the spoken text already handed out
        self._stopped = False

    def feed(self, text: str) -> list[str]:
        return self._take(text, final=False)

    def finish(self, text: str) -> list[str]:
        """The reply is complete: flush what is left of the spoken part."""
        return self._take(text, final=True)

    def _take(self, text: str, *, final: bool) -> list[str]:
        if self._stopped:
            return []
        spoken, ended = _spoken_part(text, final=final)
        if ended:  # a delegation: what is left is the note, spoken from the Action
            self._stopped = True
            return []
        if final:
            self._stopped = True
            rest = spoken[self._emitted :]
            self._emitted = len(spoken)
            return [c for c in (_clean(rest),) if c]
        out: list[str] = []
        for m in _BOUNDARY.finditer(spoken, self._emitted):
            if not spoken[m.end() :].strip():
                break  # nothing follows yet: it may be the note before a delegation
            clause = _clean(spoken[self._emitted : m.end()])
            self._emitted = m.end()
            if clause:
                out.append(clause)
        return out


def _spoken_part(text: str, *, final: bool) -> tuple[str, bool]:
    """The text before any marker, and whether a marker has ended it."""
    m = DELEGATION_RE.search(text)
    if m is not None:
        return text[: m.start()], True
    lt = text.rfind("<")
    if lt >= 0 and not final:
        tail = text[lt:]
        if any(marker.startswith(tail) for marker in _MARKERS):
            return text[:lt], False  # maybe a marker: hold it back
    return text, False


def _clean(s: str) -> str:
    for marker in _MARKERS:
        s = s.replace(marker, " ")
    return " ".join(s.split())
