"""Speak or stay silent, from an OpenAI-compatible server's first-token log-probs.

The released tokenizer may hold ``</response>`` and ``</silence>`` as one token each
or split them: the decision works either way, from the first token where the two
markers' spellings differ (DESIGN §2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from server.runtime.actions import RESPONSE, SILENCE_MARK

__all__ = ["MarkerDecision", "marker_decision"]


@dataclass(frozen=True, slots=True)
class MarkerDecision:
    speak: bool | None  # None: the reply starts with no marker, so its text decides
    generated: str = ""  # the marker the server produced: response, silence or other


def marker_decision(entries: list[dict[str, Any]], margin: float) -> MarkerDecision | None:
    """Decide speak vs. silence from the first tokens' log-probs (None: need more tokens).

    Walks the generated tokens while they are a common prefix of both markers; at
    the first token where they differ, the best candidate leading to ``</response>``
    must beat the best leading to ``</silence>`` by more than ``margin``. Either
    marker may be one token or several.
    """
    prefix = ""
    for entry in entries:
        chosen = str(entry.get("token", ""))
        candidates = [(chosen, float(entry.get("logprob", 0.0)))]
        for top in entry.get("top_logprobs") or ():
            candidates.append((str(top.get("token", "")), float(top.get("logprob", -math.inf))))
        best = {RESPONSE: -math.inf, SILENCE_MARK: -math.inf}
        for token, logprob in candidates:
            leads = _leads_to(prefix + token)
            if leads is not None:
                best[leads] = max(best[leads], logprob)
        if best[RESPONSE] > -math.inf or best[SILENCE_MARK] > -math.inf:
            generated = {RESPONSE: "response", SILENCE_MARK: "silence"}.get(
                _leads_to(prefix + chosen) or "", "other"
            )
            return MarkerDecision(best[RESPONSE] - best[SILENCE_MARK] > margin, generated)
        prefix += chosen
        text = prefix.lstrip()
        if not (_compatible(text, RESPONSE) and _compatible(text, SILENCE_MARK)):
            return MarkerDecision(None)
    return None


def _compatible(text: str, marker: str) -> bool:
    return marker.startswith(text) or text.startswith(marker)


def _leads_to(text: str) -> str | None:
    """The one marker ``text`` (a reply's start) can still become, if only one."""
    text = text.lstrip()
    r, s = _compatible(text, RESPONSE), _compatible(text, SILENCE_MARK)
    if r and not s:
        return RESPONSE
    if s and not r:
        return SILENCE_MARK
    return None
