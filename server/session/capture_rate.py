"""The session's side of ``CapturePace`` (engine/scene.py): what it hears, what it sends.

``CaptureHints`` feeds the decider each accepted frame's thumbnail and every sign of
life — the user starting to speak, a question or "ask now", a still asked for, Murmur
saying anything (as the speaker's ``SpeechObserver``: an alert by its kind) — and
sends each hint it returns to the bridge as a ``CaptureHint`` (immediate lane: it
never waits behind audio) and, for a client that asked for the trace, as a
``TickTrace`` line of its own (``action="capture"``, like the emergency path's).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from server.engine.scene import CapturePace
from server.events import CaptureHint, SpeechKind, TickTrace
from server.modes.loader import CaptureRules
from server.session.outbox import Outbox

__all__ = ["CaptureHints"]

log = logging.getLogger(__name__)


class CaptureHints:
    def __init__(
        self,
        pace: CapturePace,
        outbox: Outbox,
        *,
        rules: Callable[[], CaptureRules],
        speaking: Callable[[], SpeechKind | None],
        want_trace: bool = False,
        clock: Callable[[], float],
    ) -> None:
        self.pace = pace
        self._out = outbox
        self._rules = rules  # the mode in force says (it may change)
        self._speaking = speaking  # the kind of what the speaker plays now, if anything
        self._want_trace = want_trace
        self._clock = clock
        self._started = clock()
        self.sent = 0  # hints sent, for the session's stats

    def frame(self, thumb: np.ndarray) -> None:
        """A frame the slot took, as its ``fall.grey_thumbnail``."""
        self._send(self.pace.frame(thumb, self._rules()))

    def heard(self, reason: str) -> None:
        """The user spoke or asked, or a still was asked for (``CaptureHint.reason``)."""
        self._send(self.pace.activity(reason))

    # SpeechObserver: Murmur's own words end a quiet spell too.
    def speech_started(self, text: str) -> None:
        self.heard("alert" if self._speaking() is SpeechKind.ALERT else "spoke")

    def speech_stopped(self) -> None:
        pass

    def _send(self, hint: CaptureHint | None) -> None:
        if hint is None:
            return
        self.sent += 1
        self._out.put_nowait(hint)
        line = f"capture {hint.fps:g} fps: {hint.reason}"
        log.debug("%s", line)
        if self._want_trace:
            at = round(self._clock() - self._started, 1)
            self._out.put_nowait(TickTrace(tick_s=at, action="capture", text=line))
