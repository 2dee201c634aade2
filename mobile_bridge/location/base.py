"""What every location source yields, and the geometry the sources share.

A ``Fix`` is one position from a receiver: where, how sure (the radius in metres),
which way and how fast, when the receiver took it, and the route step that applies
there (filled in by ``route.RoutedSource``). A ``LocationSource`` yields fixes until it
runs dry (a replayed file) or is cancelled (a live receiver); what it had to skip or
reconnect for is counted in ``stats`` and said once as a status line.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from mobile_bridge.media import MediaError

__all__ = [
    "EARTH_RADIUS_M",
    "Fix",
    "LocationError",
    "LocationSource",
    "LocationStats",
    "Say",
    "Skipped",
    "bearing_deg",
    "course",
    "distance_m",
]

log = logging.getLogger("mobile_bridge.location")

EARTH_RADIUS_M = 6_371_008.8  # the mean radius, as the server's location.py uses
Say = Callable[[str], None]
# Below this a receiver's course is noise (it wanders while the wearer stands still).
MIN_COURSE_SPEED_MPS = 0.5


class LocationError(MediaError):
    """A location spec or file that cannot be used; the message says which and why."""


class Skipped(ValueError):
    """Input that gave no fix, and why: ``reason`` is a short label the stats count by
    ("bad checksum", "no fix", "truncated report"...), ``detail`` the particulars."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Fix:
    """One position. ``heading_deg``/``speed_mps`` None: the receiver did not say
    (standing still, or a 2-D fix without course); ``time_ms`` 0: no timestamp."""

    lat: float
    lon: float
    accuracy_m: float  # the horizontal error radius, metres
    heading_deg: float | None = None  # course over ground, degrees from true north
    speed_mps: float | None = None
    time_ms: int = 0  # unix ms when the receiver took it
    route_step: str = ""


@dataclass
class LocationStats:
    """What a source did (fixes yielded, input skipped by reason, reconnects) and what
    ``run_location`` did with it (sent, throttled, restamped for a receiver's bad clock)."""

    fixes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    sent: int = 0
    throttled: int = 0
    restamped: int = 0

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def skipped_text(self) -> str:
        """ "2 bad checksum, 1 no fix" (empty: nothing skipped)."""
        return ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))

    def summary(self) -> str:
        parts = [f"{self.fixes} fix(es), {self.sent} sent"]
        if self.skipped:
            parts.append(f"skipped {self.skipped_text()}")
        if self.reconnects:
            parts.append(f"{self.reconnects} reconnect(s)")
        return "; ".join(parts)


class LocationSource(ABC):
    """Where the wearer is, from one receiver or file.

    ``fixes()`` ends when a replayed file is done and runs until cancelled for a live
    receiver, which reconnects by itself when it goes away. A source holds its device
    only while ``fixes()`` runs, so each call starts afresh (a replay from its start). Bad
    input never ends it: it is skipped, counted in ``stats`` and said (once per kind
    of trouble, so a noisy line does not flood the terminal).
    """

    def __init__(self, say: Say | None = None) -> None:
        self.stats = LocationStats()
        self._say = say or (lambda line: log.warning("%s", line))
        # Where someone is stays out of logs: a console gets it coarse, a logger not at all.
        self._to_log = say is None
        self._said: set[str] = set()

    @property
    @abstractmethod
    def describe(self) -> str:
        """The source in a few words, for status lines: "gpsd at localhost:2947"."""

    @abstractmethod
    def fixes(self) -> AsyncIterator[Fix]: ...

    async def aclose(self) -> None:  # noqa: B027 (optional hook)
        """Release the device; a source that holds nothing between fixes has nothing to do."""

    def say(self, line: str) -> None:
        self._say(f"(location: {line})")

    def say_once(self, key: str, line: str) -> None:
        """``line`` the first time ``key`` comes up; again only after ``forget(key)``."""
        if key not in self._said:
            self._said.add(key)
            self.say(line)

    def forget(self, key: str) -> None:
        self._said.discard(key)

    def fixed(self, fix: Fix) -> Fix:
        """Count a fix about to be yielded; after a spell without one, say it is back."""
        self.stats.fixes += 1
        if "skip:no fix" in self._said:
            self.forget("skip:no fix")
            where = "" if self._to_log else f" (near {fix.lat:.3f}, {fix.lon:.3f})"
            self.say(f"{self.describe}: a fix again{where}")
        return fix

    def skip(self, reason: str, detail: str = "") -> None:
        """Count input that was no fix, and say so the first time it happens."""
        self.stats.skip(reason)
        more = f": {detail}" if detail else ""
        self.say_once(
            f"skip:{reason}",
            f"{self.describe}: skipped {reason}{more} (counted; said once)",
        )


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The great-circle (haversine) distance, metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The initial great-circle bearing from the first point to the second, [0, 360)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def course(track: float | None, speed_mps: float | None) -> float | None:
    """The course over ground, unless it is a standing receiver's noise."""
    if track is None or (speed_mps is not None and speed_mps < MIN_COURSE_SPEED_MPS):
        return None
    return track % 360.0
