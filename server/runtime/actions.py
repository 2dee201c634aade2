"""Parse the model's raw output into an ``Action`` (DESIGN §2).

The three legal answers are ``</silence>``, ``</response> reply`` and
``</response> note </delegation> question`` (``<delegation>`` is accepted too).
Anything without a marker is silence: an unmarked ramble must never be spoken.
"""

from __future__ import annotations

import re

from server.runtime.base import SILENCE, Action, ActionKind

__all__ = ["DELEGATION_RE", "RESPONSE", "SILENCE_MARK", "parse_action", "spoken_part"]

SILENCE_MARK = "</silence>"
RESPONSE = "</response>"
DELEGATION_RE = re.compile(r"</?delegation>")
_END_TOKENS = re.compile(r"<\|im_end\|>|<\|endoftext\|>")


def spoken_part(text: str) -> str | None:
    """What follows ``</response>`` in ``text``, or None when ``text`` is silence.

    The marker precedence every reader shares: no ``</response>``, or a
    ``</silence>`` before it, is silence (the text may still be arriving).
    """
    r = text.find(RESPONSE)
    s = text.find(SILENCE_MARK)
    if r < 0 or (0 <= s < r):
        return None
    return text[r + len(RESPONSE) :]


def parse_action(raw: str) -> Action:
    text = _END_TOKENS.split(raw, maxsplit=1)[0].strip()
    body = spoken_part(text)
    if body is None:
        return Action(ActionKind.SILENCE, raw=raw) if raw != SILENCE.raw else SILENCE
    parts = DELEGATION_RE.split(body, maxsplit=1)
    note = _clean(parts[0])
    if len(parts) == 2:
        question = _clean(parts[1])
        if question:
            return Action(ActionKind.DELEGATE, text=note, question=question, raw=raw)
    if not note:
        return Action(ActionKind.SILENCE, raw=raw)
    return Action(ActionKind.RESPONSE, text=note, raw=raw)


def _clean(s: str) -> str:
    # A stray marker inside the reply is never read aloud.
    s = s.replace(SILENCE_MARK, " ").replace(RESPONSE, " ")
    return " ".join(s.split())
