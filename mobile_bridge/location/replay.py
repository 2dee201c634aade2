"""A recorded walk's positions replayed on their own timestamps: GPX tracks, NMEA logs.

GPX (1.0 or 1.1): each ``<trkpt lat lon>`` is a fix at its ``<time>`` (a point without
one comes ``STEP_S`` after the one before). Accuracy is ``<hdop>`` (else ``<pdop>``) ×
``nmea.HDOP_TO_M``, else ``default_accuracy_m``; heading is the bearing from the
previous point that is at least ``MIN_MOVE_M`` away, speed the distance over the
time between them (GPX 1.0's ``<course>``/``<speed>`` win where present).
``<wpt>`` and ``<rtept>`` with a ``<desc>``, ``<name>`` or ``<cmt>`` are the route's
steps (``route.RoutePlan.from_gpx``).

NMEA: the RMC fixes of a log (``gpspipe -r``, a receiver's own logger), paced by
their UTC times; bad lines are skipped and counted as from a live receiver.

Replay runs at real speed on the injected clock (``speed`` 2 → twice as fast) and
stamps each fix with the bridge's clock as it is sent: to the server it is a fix taken
now, not one years stale.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.location.base import (
    Fix,
    LocationError,
    LocationSource,
    LocationStats,
    Say,
    Skipped,
    bearing_deg,
    course,
    distance_m,
)
from mobile_bridge.location.nmea import HDOP_TO_M, NmeaDecoder

__all__ = [
    "MIN_MOVE_M",
    "STEP_S",
    "GpxFile",
    "ReplaySource",
    "Waypoint",
    "read_gpx",
    "read_nmea",
]

STEP_S = 1.0
MIN_MOVE_M = 1.0  # closer than this, a bearing between two points is noise


@dataclass(frozen=True, slots=True)
class Waypoint:
    lat: float
    lon: float
    text: str


@dataclass
class GpxFile:
    track: list[tuple[float, Fix]]  # (seconds from the first point, the fix)
    waypoints: list[Waypoint]
    stats: LocationStats  # the points that could not be used


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]  # GPX 1.0 and 1.1 differ only in the namespace


def _child(el: ET.Element, name: str) -> str | None:
    for c in el:
        if _local(c.tag) == name and c.text is not None and c.text.strip():
            return c.text.strip()
    return None


def _float(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def _time_ms(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return round(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        return None


def read_gpx(
    path: str | Path, default_accuracy_m: float = 10.0, *, require_track: bool = True
) -> GpxFile:
    """The track and waypoints of a GPX file; raises ``LocationError`` for a file that
    cannot be read, or (``require_track``) has no usable track point."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise LocationError(f"cannot read the GPX file {path}: {e}") from None
    stats = LocationStats()
    points: list[tuple[int | None, Fix]] = []
    waypoints: list[Waypoint] = []
    for el in root.iter():
        kind = _local(el.tag)
        if kind not in ("trkpt", "wpt", "rtept"):
            continue
        lat, lon = _float(el.get("lat")), _float(el.get("lon"))
        if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            stats.skip(f"{kind} without a valid lat/lon")
            continue
        if kind != "trkpt":
            text = _child(el, "desc") or _child(el, "name") or _child(el, "cmt")
            if text:
                waypoints.append(Waypoint(lat, lon, " ".join(text.split())))
            continue
        dop = _float(_child(el, "hdop")) or _float(_child(el, "pdop"))
        speed = _float(_child(el, "speed"))
        fix = Fix(
            lat,
            lon,
            accuracy_m=dop * HDOP_TO_M if dop else default_accuracy_m,
            heading_deg=course(_float(_child(el, "course")), speed),
            speed_mps=speed,
        )
        points.append((_time_ms(_child(el, "time")), fix))
    track = _timeline(points, stats)
    if not track and require_track:
        raise LocationError(f"the GPX file {path} has no track point (<trkpt lat lon>) to replay")
    return GpxFile(_with_motion(track), waypoints, stats)


def read_nmea(
    path: str | Path, default_accuracy_m: float = 10.0
) -> tuple[list[tuple[float, Fix]], LocationStats]:
    """The fixes of an NMEA log on their timeline, and what was skipped."""
    try:
        text = Path(path).read_bytes().decode("ascii", "replace")
    except OSError as e:
        raise LocationError(f"cannot read the NMEA file {path}: {e.strerror or e}") from None
    stats = LocationStats()
    decoder = NmeaDecoder(default_accuracy_m)
    points: list[tuple[int | None, Fix]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            fix = decoder.feed(line)
        except Skipped as e:
            stats.skip(e.reason)
            continue
        if fix is not None:
            points.append((fix.time_ms or None, fix))
    track = _timeline(points, stats)
    if not track:
        raise LocationError(
            f"the NMEA file {path} has no valid RMC sentence to replay"
            + (f" (skipped {stats.skipped_text()})" if stats.skipped else "")
        )
    return track, stats


def _timeline(
    points: Iterable[tuple[int | None, Fix]], stats: LocationStats
) -> list[tuple[float, Fix]]:
    """Seconds from the first point for each, in order; an untimed point ``STEP_S``
    after the one before, one timed before its predecessor skipped."""
    out: list[tuple[float, Fix]] = []
    first_ms: int | None = None
    last_s = -STEP_S
    for ms, fix in points:
        if ms is None:
            at = last_s + STEP_S
        else:
            if first_ms is None:  # untimed points before it keep their places
                first_ms = ms - round((last_s + STEP_S) * 1000)
            at = (ms - first_ms) / 1000
            if at < last_s:
                stats.skip("point out of time order")
                continue
        out.append((at, dataclasses.replace(fix, time_ms=ms or 0)))
        last_s = at
    return out


def _with_motion(track: list[tuple[float, Fix]]) -> list[tuple[float, Fix]]:
    """Heading and speed where the file gave none, from the points before."""
    out: list[tuple[float, Fix]] = []
    anchor: tuple[float, Fix] | None = None  # the last point far enough back
    heading: float | None = None
    for at, fix in track:
        speed = fix.speed_mps
        if anchor is not None:
            a_at, a = anchor
            moved = distance_m(a.lat, a.lon, fix.lat, fix.lon)
            if moved >= MIN_MOVE_M:
                heading = bearing_deg(a.lat, a.lon, fix.lat, fix.lon)
                if speed is None and at > a_at:
                    speed = moved / (at - a_at)
                anchor = (at, fix)
        else:
            anchor = (at, fix)
        fix = dataclasses.replace(
            fix,
            heading_deg=fix.heading_deg if fix.heading_deg is not None else heading,
            speed_mps=speed,
        )
        out.append((at, fix))
    return out


class ReplaySource(LocationSource):
    """Fixes on a recorded timeline, paced on the clock; ends with the recording."""

    def __init__(
        self,
        name: str,
        track: list[tuple[float, Fix]],
        *,
        speed: float = 1.0,
        clock: Clock | None = None,
        say: Say | None = None,
        skipped: LocationStats | None = None,
    ) -> None:
        super().__init__(say)
        if speed <= 0:
            raise LocationError(f"replay speed must be above 0, not {speed:g}")
        self.name = name
        self.track = track
        self.speed = speed
        self._clock = clock or SystemClock()
        if skipped is not None:
            self.stats.skipped.update(skipped.skipped)

    @classmethod
    def nmea(
        cls,
        path: str | Path,
        *,
        speed: float = 1.0,
        default_accuracy_m: float = 10.0,
        clock: Clock | None = None,
        say: Say | None = None,
    ) -> ReplaySource:
        track, stats = read_nmea(path, default_accuracy_m)
        name = f"the NMEA log {Path(path).name}"
        return cls(name, track, speed=speed, clock=clock, say=say, skipped=stats)

    @property
    def describe(self) -> str:
        return self.name

    async def fixes(self) -> AsyncIterator[Fix]:
        if self.stats.skipped:
            self.say(f"{self.name}: skipped {self.stats.skipped_text()}")
        start = self._clock.monotonic()
        for at, fix in self.track:
            wait = start + at / self.speed - self._clock.monotonic()
            if wait > 0:
                await self._clock.sleep(wait)
            now_ms = int(self._clock.time() * 1000)
            yield self.fixed(dataclasses.replace(fix, time_ms=now_ms))
