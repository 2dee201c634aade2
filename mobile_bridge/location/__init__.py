"""Where the wearer is, for the server's blind and navigation modes: fixes from gpsd, a
serial NMEA receiver, or a recorded GPX/NMEA walk, sent as ``Location`` events.

``open_location(spec)`` makes a ``LocationSource`` from a ``--location`` string;
``run_location(source, session)`` sends its fixes into a running ``BridgeSession``
(about one a second by default) until the source ends or the task is cancelled.
Bad input (a bad checksum, a report without a fix, a cut-off line) is skipped and
counted; a receiver that goes away is reconnected; neither ends the session.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from murmur.v1 import companion_pb2 as pb

from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.location.base import (
    Fix,
    LocationError,
    LocationSource,
    LocationStats,
    Say,
    bearing_deg,
    distance_m,
)
from mobile_bridge.location.gpsd import GPSD_PORT, GpsdOptions, GpsdSource
from mobile_bridge.location.nmea import NmeaDecoder, parse_sentence, sentence
from mobile_bridge.location.replay import ReplaySource, read_gpx
from mobile_bridge.location.route import NEAR_M, RoutedSource, RoutePlan, load_route
from mobile_bridge.location.serialport import DEFAULT_BAUD, SerialNmeaSource, SerialOptions

__all__ = [
    "Fix",
    "GpsdSource",
    "LocationError",
    "LocationSink",
    "LocationSource",
    "LocationStats",
    "NmeaDecoder",
    "ReplaySource",
    "RoutePlan",
    "RoutedSource",
    "SerialNmeaSource",
    "bearing_deg",
    "distance_m",
    "load_route",
    "open_location",
    "parse_sentence",
    "run_location",
    "sentence",
]

# Just under a second, so a 1 Hz receiver's jitter does not drop every other fix.
MIN_INTERVAL_S = 0.9
CLOCK_SKEW_S = 86_400.0  # a receiver's clock further off than this is wrong, not late
_OPTION = re.compile(r"^(speed|accuracy|route|near)=(.*)$")
_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:]+))(?::(?P<port>\d+))?$")


class LocationSink(Protocol):
    """What ``run_location`` needs of ``BridgeSession``."""

    async def wait_ready(self) -> None: ...

    def send_location(self, fix: pb.Location) -> None: ...


def open_location(
    spec: str,
    *,
    route: str | Path | Sequence[str] | None = None,
    clock: Clock | None = None,
    say: Say | None = None,
) -> LocationSource:
    """The location source ``spec`` names (``--location SPEC``).

    ``spec`` is one of:

    - ``gpsd``, ``gpsd:HOST``, ``gpsd:HOST:PORT`` or ``gpsd://HOST[:PORT]`` (IPv6 in
      brackets): the gpsd daemon (default 127.0.0.1:2947), reconnected when it goes away;
    - ``serial:DEVICE[@BAUD]`` or a ``/dev/...`` path ``[@BAUD]``: an NMEA receiver on a
      serial port (``/dev/ttyUSB0@9600``; default 9600 baud), reopened when unplugged;
    - ``gpx:FILE`` or ``FILE.gpx``: a GPX track replayed on its own timestamps;
    - ``nmea:FILE`` or ``FILE.nmea``/``.log``/``.txt`` (or any file that is not GPX): an
      NMEA log replayed on its RMC times;

    followed by any of these options, each after a comma:

    - ``speed=X``: replay X times as fast (files only; default 1);
    - ``accuracy=M``: the error radius in metres when the input gives none (default 10);
    - ``route=FILE``: a plan of route steps (a GPX file's waypoints, or a text file of
      ``120 m TEXT`` / ``90 s TEXT`` / ``1:30 TEXT`` / ``LAT,LON TEXT`` lines; see
      ``location/route.py``);
    - ``near=M``: how close a waypoint step must be to be reached (default 20 m).

    A replayed GPX track's own waypoints are route steps too. ``route`` (a path, or the
    step lines themselves) adds to those. ``say`` gets the status lines (default:
    logged). Raises ``LocationError`` (a ``MediaError``) for a spec or file that cannot
    be used; a live receiver that is not there yet is waited for, not an error.

    Examples: ``gpsd``, ``/dev/ttyACM0@115200``, ``walk.gpx,speed=4``,
    ``gpsd,route=steps.txt``.
    """
    clock = clock or SystemClock()
    target, options = _split_options(spec)
    accuracy = _positive(options, "accuracy", 10.0)
    speed = _positive(options, "speed", 1.0)
    near = _positive(options, "near", NEAR_M)
    source: LocationSource
    plan = RoutePlan(())
    kind, _, rest = target.partition(":")
    if target == "gpsd" or kind == "gpsd":
        if "speed" in options:
            raise LocationError("speed= is for replayed files, not for gpsd")
        source = GpsdSource(_gpsd(rest), clock=clock, say=say)
    elif kind == "serial" or target.startswith("/dev/"):
        if "speed" in options:
            raise LocationError("speed= is for replayed files, not for a serial receiver")
        device, _, baud = (rest if kind == "serial" else target).partition("@")
        if not device:
            raise LocationError(f"--location {spec!r}: name the device, as serial:/dev/ttyUSB0")
        serial = SerialOptions(device, _baud(baud), default_accuracy_m=accuracy)
        source = SerialNmeaSource(serial, clock=clock, say=say)
    else:
        path = Path(rest if kind in ("gpx", "nmea") else target)
        if _is_gpx(kind, path):
            gpx = read_gpx(path, accuracy)
            plan = plan + RoutePlan.from_waypoints(gpx.waypoints)
            name = f"the GPX track {path.name}"
            source = ReplaySource(
                name, gpx.track, speed=speed, clock=clock, say=say, skipped=gpx.stats
            )
        else:
            source = ReplaySource.nmea(
                path, speed=speed, default_accuracy_m=accuracy, clock=clock, say=say
            )
    if "route" in options:
        plan = plan + load_route(options["route"])
    if route is not None:
        plan = plan + load_route(route)
    if plan.steps:
        source = RoutedSource(source, plan.with_near(near), clock=clock)
    return source


async def run_location(
    source: LocationSource,
    session: LocationSink,
    *,
    clock: Clock | None = None,
    say: Say | None = None,
    min_interval_s: float = MIN_INTERVAL_S,
) -> LocationStats:
    """Send ``source``'s fixes into ``session`` once it is ready, until the source ends
    (a replay) or this is cancelled (a live receiver: cancel it when the session ends).

    At most one fix per ``min_interval_s`` goes (a 10 Hz receiver need not cost ten
    events a second; the server only needs the latest), except that a new route step
    goes at once. A fix is stamped with the receiver's time unless that is missing or a
    day off the bridge's clock (a receiver that has not learned the date yet), then
    with the bridge's. Returns the source's stats with ``sent`` filled in; does not
    close the source (``aclose`` it after).
    """
    clock = clock or SystemClock()
    tell = say or (lambda line: None)
    stats = source.stats
    await session.wait_ready()
    last_at: float | None = None
    last_step = ""
    fixes = source.fixes()
    try:
        async for fix in fixes:
            now = clock.monotonic()
            due = last_at is None or now - last_at >= min_interval_s
            if not due and fix.route_step == last_step:
                stats.throttled += 1
                continue
            time_ms = _stamp(fix.time_ms, clock, source, stats)
            session.send_location(
                pb.Location(
                    lat=fix.lat,
                    lon=fix.lon,
                    accuracy_m=fix.accuracy_m,
                    heading_deg=fix.heading_deg or 0.0,
                    speed_mps=fix.speed_mps or 0.0,
                    route_step=fix.route_step,
                    time_ms=time_ms,
                )
            )
            stats.sent += 1
            last_at, last_step = now, fix.route_step
    finally:
        aclose = getattr(fixes, "aclose", None)
        if aclose is not None:
            await aclose()
    tell(f"(location: {source.describe} ended: {stats.summary()})")
    return stats


def _stamp(time_ms: int, clock: Clock, source: LocationSource, stats: LocationStats) -> int:
    now_ms = int(clock.time() * 1000)
    if time_ms <= 0:
        return now_ms
    if abs(now_ms - time_ms) > CLOCK_SKEW_S * 1000:
        stats.restamped += 1
        source.say_once(
            "clock",
            f"{source.describe}'s clock is {abs(now_ms - time_ms) / 86_400_000:.0f} day(s) off "
            f"the bridge's; its fixes are stamped with the bridge's clock instead",
        )
        return now_ms
    return time_ms


def _split_options(spec: str) -> tuple[str, dict[str, str]]:
    """``walk.gpx,speed=2`` → (``walk.gpx``, {"speed": "2"}): only known trailing options
    are split off, so a comma inside a path survives."""
    parts = spec.strip().split(",")
    options: dict[str, str] = {}
    while len(parts) > 1 and (m := _OPTION.match(parts[-1].strip())):
        options.setdefault(m[1], m[2].strip())
        parts.pop()
    target = ",".join(parts).strip()
    if not target:
        raise LocationError("--location needs a source: gpsd, /dev/ttyUSB0@9600 or FILE.gpx")
    return target, options


def _positive(options: dict[str, str], key: str, default: float) -> float:
    if key not in options:
        return default
    try:
        value = float(options[key])
    except ValueError:
        value = -1.0
    if not value > 0:
        raise LocationError(f"--location {key}={options[key]!r}: expected a number above 0")
    return value


def _gpsd(rest: str) -> GpsdOptions:
    address = rest.removeprefix("//").strip("/")
    if not address:
        return GpsdOptions()
    m = _HOST_PORT.match(address)
    if m is None:
        raise LocationError(f"--location gpsd:{rest}: expected gpsd:HOST or gpsd:HOST:PORT")
    port = int(m["port"]) if m["port"] else GPSD_PORT
    if not 0 < port < 65536:
        raise LocationError(f"--location gpsd:{rest}: port {port} is out of range")
    return GpsdOptions(host=m["v6"] or m["host"], port=port)


def _baud(text: str) -> int:
    if not text:
        return DEFAULT_BAUD
    if not text.isdigit():
        raise LocationError(f"baud {text!r}: expected a number, as /dev/ttyUSB0@9600")
    return int(text)


def _is_gpx(kind: str, path: Path) -> bool:
    if kind in ("gpx", "nmea"):
        return kind == "gpx"
    if path.suffix.lower() == ".gpx":
        return True
    if path.suffix.lower() in (".nmea", ".log", ".txt"):
        return False
    try:
        with path.open("rb") as f:
            head = f.read(512).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError as e:
        raise LocationError(
            f"--location {path}: {e.strerror or e}; give gpsd, a /dev/ device or a GPX/NMEA file"
        ) from None
    return head.startswith(b"<")
