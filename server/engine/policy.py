"""The guidance policy: what of the model's action is spoken, how, and when.

Pure decisions on plain values (no I/O, injected time): priority, brevity,
de-duplication and hazard handling, driven by the mode's profile. What is urgent
and how a line is shortened is ``urgency.py``'s to say; this file decides what
that means for speech.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from server.engine.hazards import side
from server.engine.urgency import (
    Hazard,
    Urgency,
    classify,
    same_hazard,
    shorten,
    worth_repeating,
)
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
# An alert never goes stale: it waits (behind another alert, or a delegated result the
# mode does not cut) until it plays, or until a newer alert about the same thing
# replaces it (``Utterance.topic``).
STALE_AFTER_S: dict[SpeechKind, float] = {
    SpeechKind.ALERT: math.inf,
    SpeechKind.NARRATION: 4.0,
    SpeechKind.ANSWER: 15.0,
    SpeechKind.DELEGATION_NOTE: 3.0,
    SpeechKind.DELEGATION_RESULT: 60.0,
    SpeechKind.SYSTEM: 10.0,
}

_CLOCK = re.compile(r"\b(1[0-2]|[1-9])\s*o'?\s*clock\b", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


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
    cue_intensity: float = 0.8  # how loud the bridge renders the cue (0..1)
    preempt: bool = False  # cut whatever lower-priority speech is playing
    topic: str = ""  # what an alert is about (its hazard's key): a newer one replaces it
    cuts_results: bool = False  # an alert that cuts a delegated result (the mode's rule)

    @property
    def expires_at(self) -> float:
        return self.created_at + STALE_AFTER_S[self.kind]

    def cuts(self, playing: Utterance) -> bool:
        """Whether this, arriving, cuts ``playing``: never another alert; a delegated
        result only where the mode says so (the alert then waits right after it);
        anything else when it ranks lower."""
        if not self.preempt or playing.kind is SpeechKind.ALERT:
            return False
        if self.kind is SpeechKind.ALERT and playing.kind is SpeechKind.DELEGATION_RESULT:
            return self.cuts_results
        return self.priority > playing.priority


class GuidancePolicy:
    def __init__(self, profile: ModeProfile, language: str = "en") -> None:
        self.profile = profile
        self.language = language
        self._said: dict[str, float] = {}  # normalised text -> when it was last said
        self._hazards: list[tuple[Hazard, float]] = []  # alerts said in the repeat window
        self.repeats: Counter[str] = Counter()  # lines not said as repeats, by kind

    def set_profile(self, profile: ModeProfile) -> None:
        self.profile = profile

    def reply(
        self, text: str, now: float, *, answering: bool = False, reading: bool = False
    ) -> Utterance | None:
        """The model chose to speak. ``answering``: a user query entered this tick;
        ``reading``: the user asked for something to be read."""
        text = " ".join(text.split())
        if not text:
            return None
        u = classify(
            text,
            rules=self.profile.urgency,
            language=self.language,
            prompted=answering,
            reading=reading,
        )
        kind = u.kind
        hazard = u.hazard if kind is SpeechKind.ALERT else None
        if kind is not SpeechKind.ANSWER:
            if len(text.split()) > self.profile.max_words:  # a streamed clause stays as it is
                text = shorten(text, self.profile.max_words, hazard, language=self.language)
            # What the user asked about is said, however recently: "what's around me?"
            # is never answered with silence because the car was named a second ago.
            if not answering and self._repeated(text, hazard, now):
                self.repeats[kind.value] += 1
                return None
        self._said[_norm(text)] = now
        alert = kind is SpeechKind.ALERT
        calm = (
            self.profile.cues.answer if kind is SpeechKind.ANSWER else self.profile.cues.narration
        )
        return Utterance(
            text=text,
            kind=kind,
            priority=PRIORITY[kind],
            created_at=now,
            # Every alert, in every mode: its cue first, and it cuts what is lower.
            cue=CueKind.HAZARD if alert else _cue(calm),
            cue_intensity=self.profile.cues.hazard_intensity if alert else 0.8,
            cue_direction=(hazard.clock if hazard and hazard.clock else clock_direction(text)),
            preempt=alert,
            # A newer alert replaces a waiting one about the same thing on the same side:
            # "a car from your left" is not the car from the right.
            topic=f"{hazard.key}@{side(hazard.clock)}" if hazard and hazard.key else "",
            cuts_results=alert and self.profile.alerts_cut_results,
        )

    def judge(self, text: str, *, answering: bool = False) -> Urgency:
        """What ``text`` would be if said now (a streamed reply is judged as it grows)."""
        rules, language = self.profile.urgency, self.language
        return classify(text, rules=rules, language=language, prompted=answering)

    def announce(
        self, text: str, kind: SpeechKind, now: float, cue: CueKind | None = None
    ) -> Utterance:
        """Speech that does not come from the model's reply (fillers, results, system)."""
        return Utterance(text=text, kind=kind, priority=PRIORITY[kind], created_at=now, cue=cue)

    def note(self, text: str, now: float, *, after: Utterance | None = None) -> Utterance:
        """The model's delegation note ("Let me check."), with a thinking cue.

        ``after``: the start of the same reply, spoken as it streamed, before the
        marker showed it was a note. The note then ranks no higher than that start,
        so the speaker (equal ranks in order) never plays the end before the start.
        """
        kind = SpeechKind.DELEGATION_NOTE
        priority = PRIORITY[kind] if after is None else min(PRIORITY[kind], after.priority)
        return Utterance(text, kind, priority, now, _cue(self.profile.cues.note))

    def result(self, text: str, now: float, *, urgent: bool = False) -> Utterance:
        """A background answer: after any warning, unless the agent marked it urgent —
        then it ranks with alerts and cuts lower-priority speech."""
        kind = SpeechKind.DELEGATION_RESULT
        priority = PRIORITY[SpeechKind.ALERT] if urgent else PRIORITY[kind]
        return Utterance(text, kind, priority, now, _cue(self.profile.cues.result), preempt=urgent)

    def _repeated(self, text: str, hazard: Hazard | None, now: float) -> bool:
        """Said within the mode's window: the same words, or the same hazard that got
        no closer and did not move (``urgency.worth_repeating``)."""
        window = self.profile.repeat_after_s
        if hazard is not None and hazard.key:  # a bare "Stop!" is judged by its words
            self._hazards = [(h, t) for h, t in self._hazards if now - t < window]
            last = next((h for h, _ in reversed(self._hazards) if same_hazard(h, hazard)), None)
            if last is not None and not worth_repeating(last, hazard):
                return True
            self._hazards.append((hazard, now))
            return False
        last_said = self._said.get(_norm(text))
        # Forget old entries so the table stays small over hours.
        if len(self._said) > 256:
            self._said = {k: t for k, t in self._said.items() if t >= now - window}
        return last_said is not None and now - last_said < window


def _cue(name: str) -> CueKind | None:
    """A mode's cue rule (modes.toml ``cues``) as the cue to send; "" is none."""
    return CueKind(name) if name else None


def _norm(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))
