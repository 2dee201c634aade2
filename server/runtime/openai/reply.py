"""One reply as it arrives: the marker decision, and its clauses for speech.

Requests ask for the first tokens' log-probs; at the first token where
``</response>`` and ``</silence>`` differ (one token each or several) the two are
compared with ``speak_margin`` (``markers.py``). When the server gives no
log-probs, the parsed output decides. A silent decision stops reading at once
(closing the stream makes vLLM abort the request).
"""

from __future__ import annotations

import time
from typing import Any

from server.runtime.actions import parse_action, spoken_part
from server.runtime.base import Action, ActionKind, TextSink
from server.runtime.clauses import ClauseStream
from server.runtime.markers import marker_decision
from server.runtime.openai.wire import Delta

__all__ = ["ReplyReader"]


class ReplyReader:
    def __init__(self, margin: float, on_clause: TextSink | None, *, prefix: str = "") -> None:
        self.margin = margin
        self.on_clause = on_clause
        self.text = prefix
        self.emitted = False  # a clause went to speech
        self.wants_reply = False  # speak, but the server generated no reply
        self.decided_at: float | None = None  # perf_counter() of the marker decision
        self._entries: list[dict[str, Any]] = []
        self._use_logprobs = not prefix
        self._verdict: bool | None = True if prefix else None  # True: speak
        self._clauses = ClauseStream()

    @property
    def speaks(self) -> bool:
        """The log-probs decided to speak (a reply is, or will be, generated)."""
        return self._verdict is True

    def feed(self, delta: Delta) -> bool:
        """Take the next piece; False when the rest of the reply is not needed."""
        self.text += delta.text
        if self._verdict is None and self._use_logprobs:
            if delta.logprobs is None:
                self._use_logprobs = not delta.text  # no log-probs: the text decides
            else:
                self._entries.extend(delta.logprobs)
                decision = marker_decision(self._entries, self.margin)
                if decision is not None and decision.speak is None:
                    self._use_logprobs = False
                elif decision is not None:
                    self._verdict = decision.speak
                    self.decided_at = time.perf_counter()
                    if not decision.speak:
                        return False
                    if decision.generated != "response":
                        self.wants_reply = True
                        return False
        self._emit(final=False)
        return True

    def action(self) -> Action:
        if self._verdict is False:
            return Action(ActionKind.SILENCE, raw=self.text)
        self._emit(final=True)
        return parse_action(self.text)

    def _emit(self, *, final: bool) -> None:
        if self.on_clause is None:
            return
        spoken = spoken_part(self.text)
        if spoken is None:
            return
        clauses = self._clauses.finish(spoken) if final else self._clauses.feed(spoken)
        for clause in clauses:
            self.emitted = True
            self.on_clause(clause)
