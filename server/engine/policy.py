"""The guidance policy: what of the model's action is spoken, how, and when.

Pure decisions on plain values (no I/O, injected time): priority, brevity,
de-duplication and hazard handling, driven by the mode's profile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.events import CueKind, SpeechKind
from server.modes import ModeProfile

__all__ = ["PRIORITY", "GuidancePolicy", "Utterance", "clock_direction"]

PRIORITY: dict[SpeechKind, int] = {
    SpeechKind.ALERT: 30,
    SpeechKind.ANSWER: 20,
    SpeechKind.DELEGATION_RESULT: 15,
    SpeechKind.DELEGATION_NOTE: 12,
    SpeechKind.NARRATION: 10,
    SpeechKind.SYSTEM: 5,
}

# How long an utterance may wait in the queue before it is no longer worth saying.
STALE_AFTER_S: dict[SpeechKind, float] = {
    SpeechKind.ALERT: 2.0,
    SpeechKind.NARRATION: 4.0,
    SpeechKind.ANSWER: 15.0,
    SpeechKind.DELEGATION_NOTE: 3.0,
    SpeechKind.DELEGATION_RESULT: 60.0,
    SpeechKind.SYSTEM: 10.0,
}

_CLOCK = re.compile(r"\b(1[0-2]|[1-9])\s*o'?\s*clock\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z']+")


def clock_direction(text: str) -> int:
    m = _CLOCK.search(text)
    return int(m.group(1)) if m else 0


@dataclass(frozen=True, slots=True)
class Utterance:
    text: str
    kind: SpeechKind
    priority: int
    created_at: float
    cue: CueKind | None = None
    cue_direction: int = 0
    preempt: bool = False  # cut whatever lower-priority speech is playing

    @property
    def expires_at(self) -> float:
        return self.created_at + STALE_AFTER_S[self.kind]


class GuidancePolicy:
    def __init__(self, profile: ModeProfile) -> None:
        self.profile = profile
        self._said: dict[str, float] = {}  # normalised text -> when it was last said

    def set_profile(self, profile: ModeProfile) -> None:
        self.profile = profile

    def reply(self, text: str, now: float, *, answering: bool = False) -> Utterance | None:
        """The model chose to speak. ``answering`` = a user query entered this tick."""
        text = " ".join(text.split())
        if not text:
            return None
        hazard = self._is_hazard(text)
        if hazard and not answering:
            kind = SpeechKind.ALERT
        elif answering:
            kind = SpeechKind.ANSWER
        else:
            kind = SpeechKind.NARRATION
        if kind is not SpeechKind.ANSWER:
            text = self._brief(text)
            if self._repeated(text, now):
                return None
        self._said[_norm(text)] = now
        return Utterance(
            text=text,
            kind=kind,
            priority=PRIORITY[kind],
            created_at=now,
            cue=CueKind.HAZARD if hazard and self.profile.hazard_cue else None,
            cue_direction=clock_direction(text),
            preempt=kind is SpeechKind.ALERT and self.profile.hazard_preempts,
        )

    def announce(
        self, text: str, kind: SpeechKind, now: float, cue: CueKind | None = None
    ) -> Utterance:
        """Speech that does not come from the model's reply (fillers, results, system)."""
        return Utterance(text=text, kind=kind, priority=PRIORITY[kind], created_at=now, cue=cue)

    def result(self, text: str, now: float, *, urgent: bool = False) -> Utterance:
        """A background answer: after any warning, unless the agent marked it urgent —
        then it ranks with alerts and cuts lower-priority speech."""
        kind = SpeechKind.DELEGATION_RESULT
        priority = PRIORITY[SpeechKind.ALERT] if urgent else PRIORITY[kind]
        return Utterance(text, kind, priority, now, CueKind.DONE, preempt=urgent)

    def _is_hazard(self, text: str) -> bool:
        words = set(_WORD.findall(text.lower()))
        low = text.lower()
        return any((w in words) if " " not in w else (w in low) for w in self.profile.hazard_words)

    def _brief(self, text: str) -> str:
        words = text.split()
        if len(words) <= self.profile.max_words:
            return text
        # Prefer ending at a clause boundary inside the budget.
        cut = words[: self.profile.max_words]
        for i in range(len(cut) - 1, 0, -1):
            if cut[i][-1] in ".,;:!?":
                cut = cut[: i + 1]
                break
        return " ".join(cut).rstrip(",;:") + ("" if cut[-1][-1] in ".!?" else ".")

    def _repeated(self, text: str, now: float) -> bool:
        last = self._said.get(_norm(text))
        # Forget old entries so the table stays small over hours.
        if len(self._said) > 256:
            horizon = now - self.profile.repeat_after_s
            self._said = {k: t for k, t in self._said.items() if t >= horizon}
        return last is not None and now - last < self.profile.repeat_after_s


def _norm(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))
