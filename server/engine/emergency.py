"""The emergency path as a pure state machine: may the wearer need help, and what next.

Inputs are plain values on injected time — what the user said, what the model said, a
fall signal, the clock, how a notification went — and every input returns a ``Step``:
effects for the caller to carry out (``Say``, ``Notify``, ``StopWaiting``,
``Remember``) and one trace line per transition. Nothing here does I/O: the session's
``EmergencyCaller`` (server/session/emergency.py) speaks, runs the answer timer and
sends the alert (server/agents/notify.py).

    idle ─ "help" / the model sees a fall / a fall signal ─▶ asking ("Are you OK?")
    asking ─ no answer in time / "help" / "no" ─▶ notifying ─ delivered ─▶ notified
                                                      └─ every contact failed ─▶ unreachable
    asking ─ "I'm fine" / "cancel" ─▶ idle

A bare "yes" to "Are you OK?" is ambiguous (fine, or yes-call?): it is asked back and
the deadline stands, so silence after it still calls for help. Words are matched per
clause, so "Help, I fell down." calls for help and "can you help me find the door" is
an ordinary question. The words per language are data (``[emergency.LANG]`` in
server/modes/modes.toml, read through ``emergency_phrases``); the matching is here.
"""

from __future__ import annotations

import enum
import math
import re
import unicodedata
from dataclasses import dataclass

from server.engine.emergency_phrases import Lexicon, Line, lexicon

__all__ = [
    "Alert",
    "AlertLocation",
    "EmergencyMachine",
    "EmergencyOptions",
    "Line",
    "Notify",
    "Remember",
    "Say",
    "State",
    "Step",
    "StopWaiting",
    "Trigger",
    "alert_message",
    "calls_for_help",
]


class State(enum.StrEnum):
    IDLE = "idle"
    ASKING = "asking"
    NOTIFYING = "notifying"
    NOTIFIED = "notified"
    UNREACHABLE = "unreachable"


class Trigger(enum.StrEnum):
    USER = "user"  # the user's words
    MODEL = "model"  # the model reported an emergency ("You seem to have fallen.")
    FALL = "fall"  # a fall signal: device motion, or the frame heuristic (engine/fall.py)


@dataclass(frozen=True, slots=True)
class Say:
    line: Line
    text: str
    urgent: bool = True  # alert priority: cuts lower speech, survives "quiet"


@dataclass(frozen=True, slots=True)
class Notify:
    trigger: Trigger
    confirmed: bool  # the user confirmed; False: no answer within ``waited_s``
    waited_s: float


@dataclass(frozen=True, slots=True)
class StopWaiting:
    """The answer timer is no longer needed."""


@dataclass(frozen=True, slots=True)
class Remember:
    """A line for the model's next turn, so it knows what the emergency path did."""

    text: str


Effect = Say | Notify | StopWaiting | Remember


@dataclass(frozen=True, slots=True)
class Step:
    effects: tuple[Effect, ...] = ()
    trace: tuple[str, ...] = ()
    handled: bool = False  # the user's words were for this path, not a query for the model
    deadline: float | None = None  # set: check() is due then (a new or moved timer)


@dataclass(frozen=True, slots=True)
class AlertLocation:
    lat: float
    lon: float
    accuracy_m: float
    age_s: float  # since the phone's fix reached the server


@dataclass(frozen=True, slots=True)
class Alert:
    """What the contacts are sent (server/agents/notify.py turns it into JSON or argv)."""

    time_s: float  # wall clock, Unix seconds
    message: str  # says what happened and, when known, where
    session_id: str
    trigger: Trigger
    confirmed: bool
    language: str = "en"
    location: AlertLocation | None = None
    frame: bytes | None = None  # the last JPEG, only when the user opted in


@dataclass(frozen=True, slots=True)
class EmergencyOptions:
    ask_timeout_s: float = 20.0
    language: str = "en"
    # After an incident ends, the model or a fall signal raising it again is ignored this
    # long (the model may go on saying "you fell" for a while); the user's words never are.
    rearm_after_s: float = 60.0


_CLAUSE = re.compile(r"[.,!?;:¡¿\n]+|\s[-–—]\s")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_ECHO_WORDS = 4  # a heard fragment this long that is part of Murmur's own question: its echo


def _fold(text: str) -> str:
    text = text.replace("’", "'").replace("ß", "ss").lower()
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _clauses(text: str) -> list[str]:
    """Folded clauses, each its words joined by single spaces."""
    out = []
    for part in _CLAUSE.split(_fold(text)):
        words = _WORD.findall(part)
        if words:
            out.append(" ".join(words))
    return out


def _lexicons(language: str) -> list[Lexicon]:
    """The language's words, then English's: English is always understood too."""
    own = lexicon(language)
    return [own] if own.language == "en" else [own, lexicon("en")]


def _full(patterns: tuple[str, ...], clauses: list[str]) -> bool:
    return any(re.fullmatch(p, c) for p in patterns for c in clauses)


def _any(patterns: tuple[str, ...], clauses: list[str]) -> bool:
    return any(re.search(p, c) for p in patterns for c in clauses)


def _helping(clauses: list[str], lexicons: list[Lexicon]) -> bool:
    return any(_full(x.alone, clauses) or _any(x.anywhere, clauses) for x in lexicons)


def calls_for_help(text: str, language: str = "en") -> bool:
    """Whether the user's words are a call for help (not a question that says "help")."""
    return _helping(_clauses(text), _lexicons(language))


def alert_message(notify: Notify, location: AlertLocation | None, language: str = "en") -> str:
    """The alert's text for a person: what happened and where, in ``language``."""
    m = _lexicons(language)[0].messages
    who = m[notify.trigger.value]
    how = m["confirmed"] if notify.confirmed else m["no_answer"].format(waited=notify.waited_s)
    if location is None:
        return f"{who} {how} {m['no_location']}"
    lat, lon = location.lat, location.lon
    osm = f"https://www.openstreetmap.org/?mlat={lat:.5f}&mlon={lon:.5f}#map=18/{lat:.5f}/{lon:.5f}"
    where = m["location"].format(
        lat=lat, lon=lon, accuracy=location.accuracy_m, age=location.age_s, map=osm
    )
    return f"{who} {how} {where}"


# ------------------------------------------------------------------ the machine


class EmergencyMachine:
    def __init__(self, options: EmergencyOptions = EmergencyOptions()) -> None:
        self.options = options
        self.state = State.IDLE
        self.deadline: float | None = None  # while asking: when no answer means "call"
        self._lex = _lexicons(options.language)
        self._lines = self._lex[0].lines
        self._trigger = Trigger.USER
        self._settled_at = -math.inf  # when the last incident ended
        self._retry_said = False
        self._said = ""  # the last line said, folded: its echo is not an answer

    # ------------------------------------------------------------------ inputs

    def user_said(self, text: str, now: float) -> Step:
        """A final transcript or typed text, before it may become a query."""
        clauses = _clauses(text)
        if not clauses:
            return Step()
        if self.state is State.ASKING:
            return self._answer(clauses, now)
        if not _helping(clauses, self._lex):
            return Step()
        if self.state is State.NOTIFYING:
            return Step(
                (self._say(Line.CALLING),),
                ("emergency: notifying; the user called for help again",),
                handled=True,
            )
        return self._ask(Trigger.USER, now, "the user called for help")

    def reports_emergency(self, text: str) -> bool:
        """The model's words say the wearer may need help ("You seem to have fallen.")."""
        return _any(tuple(p for x in self._lex for p in x.model), _clauses(text))

    def model_said(self, text: str, now: float) -> Step:
        """The model's reply (or delegation note) of a tick."""
        if not self.reports_emergency(text):
            return Step()
        return self._raised(Trigger.MODEL, now, "the model reported an emergency")

    def fall_detected(self, now: float, how: str = "") -> Step:
        """A fall signal (server/engine/fall.py: the bridge's device motion, or the frame
        heuristic); ``how`` is its evidence, for the trace and the model's turn."""
        return self._raised(
            Trigger.FALL, now, f"a fall was detected ({how})" if how else "a fall was detected"
        )

    def check(self, now: float) -> Step:
        """The timer: no answer by the deadline calls for help."""
        if self.state is not State.ASKING or self.deadline is None or now < self.deadline:
            return Step()
        return self._notify(now, confirmed=False, why="no answer in time")

    def delivered(self, now: float) -> Step:
        """One contact got the alert (the first success counts; the rest are traced)."""
        if self.state is not State.NOTIFYING:
            return Step(trace=("emergency: another contact was notified",))
        return Step(
            (
                self._say(Line.CALLED),
                Remember("[Emergency] Murmur has notified the user's emergency contacts."),
            ),
            (self._go(State.NOTIFIED, now, "a contact got the alert"),),
        )

    def attempt_failed(self, now: float, *, retrying: bool) -> Step:
        """A try failed; ``retrying``: that contact is tried again. The user hears it once
        an incident, not at every try."""
        trace = f"emergency: a try failed ({'retrying' if retrying else 'giving up on it'})"
        if self.state is not State.NOTIFYING or not retrying or self._retry_said:
            return Step(trace=(trace,))
        self._retry_said = True
        return Step((self._say(Line.RETRYING),), (trace,))

    def gave_up(self, now: float) -> Step:
        """Every contact failed, retries spent."""
        if self.state is not State.NOTIFYING:
            return Step()
        return Step(
            (
                self._say(Line.UNREACHABLE),
                Remember("[Emergency] Murmur could not reach the user's emergency contacts."),
            ),
            (self._go(State.UNREACHABLE, now, "no contact could be reached"),),
        )

    # ------------------------------------------------------------------ transitions

    def _answer(self, clauses: list[str], now: float) -> Step:
        words = " ".join(clauses)
        if len(words.split()) >= _ECHO_WORDS and f" {words} " in f" {self._said} ":
            return Step(
                trace=("emergency: asking; ignored the echo of its question",), handled=True
            )
        lex = self._lex
        if _any(tuple(p for x in lex for p in x.not_fine), clauses):
            return self._notify(now, confirmed=True, why="the user is not OK")
        if _any(tuple(p for x in lex for p in x.fine), clauses):
            self.deadline = None
            return Step(
                (
                    StopWaiting(),
                    self._say(Line.CANCELLED, urgent=False),
                    Remember("[Emergency] The user said they are fine; nobody was called."),
                ),
                (self._go(State.IDLE, now, "the user is fine"),),
                handled=True,
            )
        if _full(tuple(p for x in lex for p in x.confirm), clauses) or _helping(clauses, lex):
            return self._notify(now, confirmed=True, why="the user confirmed")
        if _full(tuple(p for x in lex for p in x.unsure), clauses):
            return Step(
                (self._say(Line.CLARIFY),),
                ("emergency: asking; the answer was unclear, asked back (deadline stands)",),
                handled=True,
            )
        return Step(trace=("emergency: asking; the user said something else",))

    def _raised(self, trigger: Trigger, now: float, why: str) -> Step:
        if self.state in (State.ASKING, State.NOTIFYING):
            return Step(trace=(f"emergency: {self.state}; {why} again",))
        if now - self._settled_at < self.options.rearm_after_s:
            return Step(trace=(f"emergency: {why}; ignored, an incident just ended",))
        return self._ask(trigger, now, why)

    def _ask(self, trigger: Trigger, now: float, why: str) -> Step:
        self._trigger = trigger
        self._retry_said = False
        self.deadline = now + self.options.ask_timeout_s
        trace = self._go(State.ASKING, now, why)
        return Step(
            (self._say(Line.ASK), Remember(f"[Emergency] {why}; Murmur asked if they are OK.")),
            (trace,),
            handled=trigger is Trigger.USER,
            deadline=self.deadline,
        )

    def _notify(self, now: float, *, confirmed: bool, why: str) -> Step:
        self.deadline = None
        notify = Notify(self._trigger, confirmed, self.options.ask_timeout_s)
        return Step(
            (StopWaiting(), self._say(Line.CALLING), notify),
            (self._go(State.NOTIFYING, now, why),),
            handled=True,
        )

    def _go(self, to: State, now: float, why: str) -> str:
        line = f"emergency: {self.state} → {to} ({why})"
        self.state = to
        if to in (State.IDLE, State.NOTIFIED, State.UNREACHABLE):
            self._settled_at = now
        return line

    def _say(self, line: Line, *, urgent: bool = True) -> Say:
        text = self._lines[line]
        self._said = " ".join(_clauses(text))
        return Say(line, text, urgent)
