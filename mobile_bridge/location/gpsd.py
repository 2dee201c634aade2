"""Fixes from gpsd, the Linux GPS daemon, over its JSON protocol on TCP (port 2947).

The client sends ``?WATCH={"enable":true,"json":true}`` and reads one JSON report a
line. A ``TPV`` report with ``mode`` 2 (2-D) or 3 (3-D) is a fix: ``lat``/``lon``,
accuracy from ``eph`` (gpsd ≥ 3.20's horizontal error estimate) else the hypotenuse
of ``epx``/``epy`` (its per-axis 95 % errors) else ``default_accuracy_m``, heading
from ``track`` and ``speed`` in m/s, ``time`` ISO 8601 UTC. ``mode`` 0/1 is "no fix"
(said once until a fix comes back); a line that is not JSON (cut off, garbage) is
skipped and counted; ``DEVICES`` with none and ``ERROR`` reports are said. When gpsd
goes away the source reconnects with backoff (``lines.reconnecting_lines``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.location.base import Fix, LocationSource, Say, Skipped, course
from mobile_bridge.location.lines import LINE_LIMIT, Backoff, reconnecting_lines, stream_lines

__all__ = ["GPSD_PORT", "WATCH", "GpsdOptions", "GpsdSource", "tpv_fix"]

GPSD_PORT = 2947
WATCH = b'?WATCH={"enable":true,"json":true}\n'


@dataclass(frozen=True)
class GpsdOptions:
    host: str = "127.0.0.1"
    port: int = GPSD_PORT
    connect_timeout_s: float = 5.0
    default_accuracy_m: float = 10.0  # a TPV without any error estimate
    backoff: Backoff = field(default_factory=Backoff)


def _number(report: dict[str, Any], key: str) -> float | None:
    value = report.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _time_ms(value: object) -> int:
    if not isinstance(value, str) or not value:
        return 0
    try:
        return round(datetime.fromisoformat(value).timestamp() * 1000)
    except ValueError:
        return 0


def tpv_fix(report: dict[str, Any], default_accuracy_m: float = 10.0) -> Fix:
    """A ``TPV`` report as a fix; raises ``Skipped`` ("no fix") when it has none."""
    mode = report.get("mode", 0)
    if not isinstance(mode, int) or mode < 2:
        raise Skipped("no fix", f"TPV mode {mode}")
    lat, lon = _number(report, "lat"), _number(report, "lon")
    if lat is None or lon is None:
        raise Skipped("no fix", "TPV without lat/lon")
    eph, epx, epy = _number(report, "eph"), _number(report, "epx"), _number(report, "epy")
    if eph is not None:
        accuracy = eph
    elif epx is not None and epy is not None:
        accuracy = math.hypot(epx, epy)
    else:
        accuracy = epx or epy or default_accuracy_m
    speed = _number(report, "speed")
    return Fix(
        lat=lat,
        lon=lon,
        accuracy_m=accuracy,
        heading_deg=course(_number(report, "track"), speed),
        speed_mps=speed,
        time_ms=_time_ms(report.get("time")),
    )


class GpsdSource(LocationSource):
    """gpsd's fixes, reconnecting when it goes away, until cancelled."""

    def __init__(
        self,
        options: GpsdOptions | None = None,
        *,
        clock: Clock | None = None,
        say: Say | None = None,
    ) -> None:
        super().__init__(say)
        self.options = options or GpsdOptions()
        self._clock = clock or SystemClock()

    @property
    def describe(self) -> str:
        host = self.options.host
        host = f"[{host}]" if ":" in host else host
        return f"gpsd at {host}:{self.options.port}"

    async def fixes(self) -> AsyncIterator[Fix]:
        lines = reconnecting_lines(
            self,
            self._connect,
            self._clock,
            self.options.backoff,
            hint="Is gpsd running? (`systemctl start gpsd`, or `gpsd -N /dev/ttyUSB0`)",
        )
        async with contextlib.aclosing(lines):
            async for line in lines:
                fix = self._report(line)
                if fix is not None:
                    yield self.fixed(fix)

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncGenerator[str, None]]:
        o = self.options
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(o.host, o.port, limit=LINE_LIMIT), o.connect_timeout_s
        )
        try:
            writer.write(WATCH)
            await writer.drain()
            yield stream_lines(self, reader)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _report(self, line: str) -> Fix | None:
        if not line.strip():
            return None
        try:
            report = json.loads(line)
        except ValueError:
            self.skip("truncated report", repr(line.strip()[:40]))
            return None
        if not isinstance(report, dict):
            self.skip("truncated report", repr(line.strip()[:40]))
            return None
        kind = report.get("class")
        if kind == "TPV":
            try:
                return tpv_fix(report, self.options.default_accuracy_m)
            except Skipped as e:
                self.skip(e.reason, e.detail)
        elif kind == "DEVICES" and not report.get("devices"):
            self.say_once("no device", f"{self.describe} has no GPS receiver attached yet")
        elif kind == "DEVICES":
            self.forget("no device")
        elif kind == "ERROR":
            self.say(f"{self.describe} said: {report.get('message', line.strip())}")
        return None
