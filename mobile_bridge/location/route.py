"""The route step: the instruction that applies where the wearer is now.

A phone's map app gives the server its current instruction; a bridge without one
can follow a plan of steps written beforehand. Each step becomes the current one when
it is *reached*, and stays so until the next is reached; each is reached once. A step
is reached

- after walking a distance from the first fix: ``120 m Turn left on Main St``
  (metres counted between points at least ``MOVE_M`` apart, so a standing receiver's
  wander does not add up);
- after a time from the first fix, on the bridge's clock: ``90 s Cross at the lights``
  or ``1:30 Cross at the lights``;
- on coming within ``near_m`` (default 20 m) of a point: ``52.52010,13.40500 Turn left``,
  or a GPX ``<wpt>``/``<rtept>`` whose ``<desc>`` (else ``<name>``, else ``<cmt>``)
  is the step.

A plan file is a GPX file (its waypoints and route points) or text with one step a
line as above; blank lines and lines starting with ``#`` are left out. A GPX track
being replayed brings its own waypoints as steps.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.location.base import Fix, LocationError, LocationSource, distance_m
from mobile_bridge.location.replay import Waypoint, read_gpx

__all__ = ["MOVE_M", "NEAR_M", "RoutePlan", "RouteStep", "RoutedSource", "load_route"]

MOVE_M = 5.0
NEAR_M = 20.0

_DISTANCE = re.compile(r"^(\d+(?:\.\d+)?)\s*(m|km)\s+(.+)$", re.IGNORECASE)
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)\s*s\s+(.+)$", re.IGNORECASE)
_CLOCK = re.compile(r"^(\d+):([0-5]\d)\s+(.+)$")
_POINT = re.compile(r"^(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s+(.+)$")


@dataclass(frozen=True, slots=True)
class RouteStep:
    """One instruction and what reaches it (exactly one of the three)."""

    text: str
    after_m: float | None = None
    after_s: float | None = None
    at: Waypoint | None = None


def _step(line: str) -> RouteStep | None:
    if m := _DISTANCE.match(line):
        scale = 1000.0 if m[2].lower() == "km" else 1.0
        return RouteStep(m[3].strip(), after_m=float(m[1]) * scale)
    if m := _SECONDS.match(line):
        return RouteStep(m[2].strip(), after_s=float(m[1]))
    if m := _CLOCK.match(line):
        return RouteStep(m[3].strip(), after_s=int(m[1]) * 60.0 + int(m[2]))
    if m := _POINT.match(line):
        lat, lon = float(m[1]), float(m[2])
        if -90 <= lat <= 90 and -180 <= lon <= 180:
            return RouteStep(m[3].strip(), at=Waypoint(lat, lon, m[3].strip()))
    return None


@dataclass(frozen=True)
class RoutePlan:
    steps: tuple[RouteStep, ...]
    near_m: float = NEAR_M

    @classmethod
    def from_lines(cls, lines: Iterable[str], *, name: str = "the route") -> RoutePlan:
        """Steps written one a line (see the module); raises ``LocationError`` naming the
        first line that is none of the forms."""
        steps = []
        for n, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            step = _step(line)
            if step is None:
                raise LocationError(
                    f"{name}, line {n}: {line!r} is not a step; write '120 m TEXT', "
                    f"'90 s TEXT', '1:30 TEXT' or 'LAT,LON TEXT'"
                )
            steps.append(step)
        return cls(tuple(steps))

    @classmethod
    def from_waypoints(cls, waypoints: Iterable[Waypoint]) -> RoutePlan:
        return cls(tuple(RouteStep(w.text, at=w) for w in waypoints))

    def with_near(self, near_m: float) -> RoutePlan:
        return dataclasses.replace(self, near_m=near_m)

    def __add__(self, other: RoutePlan) -> RoutePlan:
        return RoutePlan(self.steps + other.steps, self.near_m)


def load_route(route: str | Path | Sequence[str]) -> RoutePlan:
    """A plan from a GPX file, a text file of steps, or the steps themselves (a list of
    lines, as a repeated ``--route-step`` option would give)."""
    if not isinstance(route, str | Path):
        return RoutePlan.from_lines(route, name="--route")
    path = Path(route)
    if path.suffix.lower() == ".gpx":
        waypoints = read_gpx(path, require_track=False).waypoints
        if not waypoints:
            raise LocationError(
                f"the GPX file {path} has no <wpt> or <rtept> with a <desc> or <name> to "
                f"use as a route step"
            )
        return RoutePlan.from_waypoints(waypoints)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LocationError(f"cannot read the route file {path}: {e}") from None
    return RoutePlan.from_lines(text.splitlines(), name=str(path))


class RouteFollower:
    """Which step is current, fix by fix: pure, on the injected clock."""

    def __init__(self, plan: RoutePlan, clock: Clock) -> None:
        self.plan = plan
        self._clock = clock
        self._reached: set[int] = set()
        self._current = ""
        self._start: float | None = None
        self._walked_m = 0.0
        self._anchor: Fix | None = None

    @property
    def walked_m(self) -> float:
        return self._walked_m

    def step(self, fix: Fix) -> str:
        now = self._clock.monotonic()
        if self._start is None:
            self._start = now
        if self._anchor is None:
            self._anchor = fix
        else:
            moved = distance_m(self._anchor.lat, self._anchor.lon, fix.lat, fix.lon)
            if moved >= MOVE_M:
                self._walked_m += moved
                self._anchor = fix
        elapsed = now - self._start
        for i, s in enumerate(self.plan.steps):  # in plan order: the last one reached wins
            if i not in self._reached and self._reaches(s, fix, elapsed):
                self._reached.add(i)
                self._current = s.text
        return self._current

    def _reaches(self, s: RouteStep, fix: Fix, elapsed: float) -> bool:
        if s.after_m is not None:
            return self._walked_m >= s.after_m
        if s.after_s is not None:
            return elapsed >= s.after_s
        assert s.at is not None
        return distance_m(s.at.lat, s.at.lon, fix.lat, fix.lon) <= self.plan.near_m


class RoutedSource(LocationSource):
    """Another source's fixes with the plan's current step on each."""

    def __init__(self, inner: LocationSource, plan: RoutePlan, *, clock: Clock | None = None):
        super().__init__()
        self.inner = inner
        self.stats = inner.stats  # one count for the pair
        self.follower = RouteFollower(plan, clock or SystemClock())

    @property
    def describe(self) -> str:
        return self.inner.describe

    def say(self, line: str) -> None:
        self.inner.say(line)  # one voice for the pair: the inner source's

    async def fixes(self) -> AsyncIterator[Fix]:
        fixes = self.inner.fixes()
        try:
            async for fix in fixes:
                step = self.follower.step(fix)
                yield dataclasses.replace(fix, route_step=step or fix.route_step)
        finally:
            aclose = getattr(fixes, "aclose", None)
            if aclose is not None:
                await aclose()

    async def aclose(self) -> None:
        await self.inner.aclose()
