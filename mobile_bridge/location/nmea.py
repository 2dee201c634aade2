"""NMEA 0183 from a GPS receiver: sentences checked and parsed, then made into fixes.

A fix comes from each RMC ("recommended minimum": position, speed, course, date and
time; every receiver sends it by default, under any talker: GP, GN, GL, GA, BD...).
Its accuracy comes from the same second's GST (the receiver's own error estimate),
else from the latest GGA's HDOP × ``HDOP_TO_M`` (a consumer receiver's typical range
error), else from ``default_accuracy_m``. A GGA of the same second with fix quality 0
overrules an RMC that says valid. Other sentences (GSV, GSA, VTG, proprietary) are
ignored without a word.

A line whose ``*hh`` checksum does not match, that lost its checksum (cut off), or
whose fields do not parse raises ``Skipped`` with the reason; a receiver without a
fix raises it too ("no fix"). The caller counts and goes on.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass

from mobile_bridge.location.base import Fix, Skipped, course

__all__ = [
    "HDOP_TO_M",
    "KNOT_MPS",
    "NmeaDecoder",
    "Sentence",
    "checksum",
    "parse_sentence",
    "sentence",
]

HDOP_TO_M = 5.0
KNOT_MPS = 1852.0 / 3600.0


@dataclass(frozen=True, slots=True)
class Sentence:
    talker: str  # "GP", "GN"...; "" for a proprietary sentence
    kind: str  # "RMC", "GGA"...
    fields: tuple[str, ...]  # after the address field


def checksum(body: str) -> int:
    """XOR of the characters between ``$`` and ``*``."""
    value = 0
    for ch in body.encode("ascii", "replace"):
        value ^= ch
    return value


def sentence(body: str) -> str:
    """``body`` as a sentence with its checksum: ``$body*hh`` (for tests and tools)."""
    return f"${body}*{checksum(body):02X}"


def parse_sentence(line: str) -> Sentence:
    """One checked sentence; raises ``Skipped`` for a bad or cut-off one."""
    text = line.strip()
    start = text.find("$")
    if start < 0:
        raise Skipped("not NMEA", repr(text[:40]))
    text = text[start + 1 :]
    body, star, given = text.rpartition("*")
    if not star or len(given) != 2:
        raise Skipped("truncated sentence", repr(line.strip()[:40]))
    try:
        want = int(given, 16)
    except ValueError:
        raise Skipped("truncated sentence", repr(line.strip()[:40])) from None
    if checksum(body) != want:
        raise Skipped("bad checksum", f"{given} on {body[:24]!r}…, {checksum(body):02X} computed")
    address, *fields = body.split(",")
    if address.startswith("P"):
        return Sentence("", address, tuple(fields))
    if len(address) != 5:
        raise Skipped("malformed sentence", f"address {address!r}")
    return Sentence(address[:2], address[2:], tuple(fields))


def _coordinate(value: str, hemi: str, degree_digits: int) -> float:
    """``ddmm.mmmm`` (latitude) or ``dddmm.mmmm`` (longitude) with N/S/E/W, in degrees."""
    if not value or len(hemi) != 1 or hemi not in "NSEW":
        raise Skipped("no fix", "empty position")
    try:
        degrees = int(value[:degree_digits])
        minutes = float(value[degree_digits:])
    except ValueError:
        raise Skipped("malformed sentence", f"coordinate {value!r}") from None
    out = degrees + minutes / 60.0
    return -out if hemi in "SW" else out


def _float(value: str) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        raise Skipped("malformed sentence", f"number {value!r}") from None


def _unix_ms(hhmmss: str, ddmmyy: str) -> int:
    """The RMC's UTC time and date as unix ms; 0 when either is missing."""
    if len(hhmmss) < 6 or len(ddmmyy) != 6:
        return 0
    try:
        h, m, s = int(hhmmss[:2]), int(hhmmss[2:4]), float(hhmmss[4:])
        day, month, yy = int(ddmmyy[:2]), int(ddmmyy[2:4]), int(ddmmyy[4:])
    except ValueError:
        raise Skipped("malformed sentence", f"time {hhmmss!r} date {ddmmyy!r}") from None
    year = 2000 + yy if yy < 80 else 1900 + yy  # NMEA's two-digit year
    whole = calendar.timegm((year, month, day, h, m, 0, 0, 0, 0))
    return round((whole + s) * 1000)


@dataclass(frozen=True, slots=True)
class _Quality:
    time: str  # hhmmss.ss, the epoch it belongs to
    fix_quality: int | None = None  # GGA: 0 none, 1 GPS, 2 DGPS, 4/5 RTK...
    hdop: float | None = None
    error_m: float | None = None  # GST: the receiver's own horizontal error estimate


class NmeaDecoder:
    """Sentences → fixes, remembering the latest GGA and GST for the RMC that follows."""

    def __init__(self, default_accuracy_m: float = 10.0) -> None:
        self.default_accuracy_m = default_accuracy_m
        self._gga: _Quality | None = None
        self._gst: _Quality | None = None

    def feed(self, line: str) -> Fix | None:
        """The fix ``line`` completes, None for a sentence that only informs or is
        ignored; raises ``Skipped`` for a bad line or one that says there is no fix."""
        s = parse_sentence(line)
        if s.kind == "RMC":
            return self._rmc(s.fields)
        if s.kind == "GGA":
            self._on_gga(s.fields)
        elif s.kind == "GST":
            self._on_gst(s.fields)
        return None

    def _on_gga(self, f: tuple[str, ...]) -> None:
        if len(f) < 8:
            raise Skipped("malformed sentence", f"GGA with {len(f)} fields")
        quality = _float(f[5])
        self._gga = _Quality(
            f[0], fix_quality=None if quality is None else int(quality), hdop=_float(f[7])
        )

    def _on_gst(self, f: tuple[str, ...]) -> None:
        if len(f) < 7:
            raise Skipped("malformed sentence", f"GST with {len(f)} fields")
        lat_sd, lon_sd = _float(f[5]), _float(f[6])
        if lat_sd is not None and lon_sd is not None:
            self._gst = _Quality(f[0], error_m=math.hypot(lat_sd, lon_sd))

    def _rmc(self, f: tuple[str, ...]) -> Fix:
        if len(f) < 9:
            raise Skipped("malformed sentence", f"RMC with {len(f)} fields")
        mode = f[11] if len(f) > 11 else ""  # NMEA 2.3's mode indicator
        if f[1] != "A" or mode == "N":
            raise Skipped("no fix", f"RMC status {f[1] or '?'}")
        gga = self._gga
        if gga is not None and gga.time == f[0] and gga.fix_quality == 0:
            raise Skipped("no fix", "GGA fix quality 0")
        lat = _coordinate(f[2], f[3], 2)
        lon = _coordinate(f[4], f[5], 3)
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise Skipped("malformed sentence", f"position {lat:.5f}, {lon:.5f}")
        knots = _float(f[6])
        speed = None if knots is None else knots * KNOT_MPS
        return Fix(
            lat=lat,
            lon=lon,
            accuracy_m=self._accuracy(f[0]),
            heading_deg=course(_float(f[7]), speed),
            speed_mps=speed,
            time_ms=_unix_ms(f[0], f[8]),
        )

    def _accuracy(self, epoch: str) -> float:
        gst, gga = self._gst, self._gga
        if gst is not None and gst.time == epoch and gst.error_m is not None:
            return gst.error_m
        if gga is not None and gga.hdop is not None:
            return gga.hdop * HDOP_TO_M
        return self.default_accuracy_m
