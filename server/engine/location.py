"""Where the user is, as the model reads it: a line when the fix changed meaningfully.

The phone sends its fix as often as it likes, mostly unchanged. Repeating it in every
turn costs tokens and tells the model nothing new, so in a mode with ``location`` the
fix enters a turn when it is the first, or moved more than the mode's
``location_moved_m`` (haversine) from the fix last said, turned more than
``location_heading_deg``, or its accuracy radius changed by more than
``location_accuracy_m``. The phone's route step is a line of its own that enters when
its text changes. Every line says how old the fix is. A fix older than
``location_stale_s`` is said once, as stale, rather than passing for the current
position. "Where am I?" (the ``where_am_i`` phrases of the session's language) puts the
fix in that turn even when unchanged. When the model's context rolls over to a new
chunk, earlier turns are gone from it, so the fix is said again (``forget``).

Age: the phone stamps a fix with its own clock (``time_ms``, Unix ms). Its age on
arrival is our wall clock minus that stamp, never below 0 (a phone clock a little
ahead of ours); after that it ages on the session's monotonic clock, so a wall-clock
jump here does not age it. A fix without a stamp is as old as its arrival.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from server.engine.commands import normalise
from server.events import LocationIn
from server.modes import ModeProfile, command_words
from server.modes.loader import LocationRules

__all__ = ["LocationContext", "asks_where", "distance_m", "turned_deg"]

EARTH_RADIUS_M = 6_371_008.8  # the mean radius


def distance_m(a: LocationIn, b: LocationIn) -> float:
    """The great-circle (haversine) distance between two fixes, in metres."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def turned_deg(a: float, b: float) -> float:
    """The smaller angle between two headings: 350° → 10° is 20°."""
    d = abs(a - b) % 360
    return min(d, 360 - d)


def asks_where(query: str | None, language: str) -> bool:
    """Whether ``query`` has one of the language's (else English's) "where am I?" phrases."""
    if not query:
        return False
    words = " ".join(normalise(query))
    for lang in dict.fromkeys((language, "en")):
        for phrase in command_words(lang).where_am_i:
            if f" {' '.join(normalise(phrase))} " in f" {words} ":
                return True
    return False


def _changed(said: LocationIn, now: LocationIn, rules: LocationRules) -> bool:
    return (
        distance_m(said, now) > rules.moved_m
        or turned_deg(said.heading_deg, now.heading_deg) > rules.heading_deg
        or abs(said.accuracy_m - now.accuracy_m) > rules.accuracy_m
    )


def _age(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s} s old" if s < 120 else f"{s // 60} min old"


def describe(loc: LocationIn, age_s: float, *, stale: bool = False) -> str:
    """The fix as one line of the turn: "Location (12 s old): 52.52000, 13.40500 (±5 m)…"."""
    age = f"{_age(age_s)}, stale: no newer fix" if stale else _age(age_s)
    parts = [f"Location ({age}): {loc.lat:.5f}, {loc.lon:.5f} (±{loc.accuracy_m:.0f} m)"]
    if loc.heading_deg:
        parts.append(f"heading {loc.heading_deg:.0f}°")
    if loc.speed_mps:
        parts.append(f"speed {loc.speed_mps:.1f} m/s")
    return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class _Fix:
    loc: LocationIn
    arrived: float  # the session clock
    lag_s: float  # its age when it arrived


class LocationContext:
    """The latest fix and what of it the model was last told; pure, on injected clocks."""

    def __init__(self, clock: Callable[[], float], wall: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._wall = wall
        self._fix: _Fix | None = None
        self._said: LocationIn | None = None  # the fix last said
        self._said_stale = False  # ...and it was said as stale
        self._said_step = ""  # the route step last said

    def update(self, loc: LocationIn) -> None:
        lag = max(0.0, self._wall() - loc.time_ms / 1000) if loc.time_ms > 0 else 0.0
        self._fix = _Fix(loc, self._clock(), lag)

    def age_s(self) -> float | None:
        """How old the latest fix is now (None: no fix yet)."""
        fix = self._fix
        return None if fix is None else fix.lag_s + self._clock() - fix.arrived

    def text(self) -> str | None:
        """The latest fix with its route step, for a background agent (None: none)."""
        fix, age = self._fix, self.age_s()
        if fix is None or age is None:
            return None
        step = f", route step: {fix.loc.route_step}" if fix.loc.route_step else ""
        return describe(fix.loc, age) + step

    def forget(self) -> None:
        """The model no longer has what it was told (a new chunk of its context, or a
        mode without location): the next location turn says the fix and step again."""
        self._said, self._said_stale, self._said_step = None, False, ""

    def lines(self, profile: ModeProfile, *, asked: bool = False) -> list[str]:
        """What of the location enters this tick's turn in ``profile``'s mode; ``asked``:
        the user asked where they are. A mode without location gets nothing and starts
        the next location mode afresh (its first turn gets the fix)."""
        fix, age = self._fix, self.age_s()
        if not profile.location_in_context:
            self.forget()
            return []
        if fix is None or age is None:
            return []
        loc, rules = fix.loc, profile.location
        out: list[str] = []
        stale = age > rules.stale_s
        said = self._said
        if stale:
            due = not (self._said_stale and said == loc)  # said as stale once per fix
        else:
            due = said is None or self._said_stale or _changed(said, loc, rules)
        if due or asked:
            out.append(describe(loc, age, stale=stale))
            self._said, self._said_stale = loc, stale
        step = loc.route_step.strip()
        if step != self._said_step or (asked and step):
            out.append(f"Route step ({_age(age)}): {step or 'none now'}")
            self._said_step = step
        return out
