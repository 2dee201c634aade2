"""Lines from a live receiver (gpsd's socket, a serial device) that may come and go.

``reconnecting_lines`` opens the receiver, yields its lines, and when it cannot be
opened or goes away says so (once per outage), waits with exponential backoff on the
injected clock and opens it again, until cancelled. A receiver never ends the walk:
GPS is lost in tunnels, USB receivers get unplugged, gpsd gets restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from mobile_bridge.clock import Clock
from mobile_bridge.location.base import LocationSource

__all__ = ["LINE_LIMIT", "Backoff", "reconnecting_lines", "stream_lines"]

LINE_LIMIT = 1 << 20  # gpsd's SKY reports run to kilobytes; garbage without newlines does not
Opener = Callable[[], AbstractAsyncContextManager[AsyncGenerator[str, None]]]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between tries: ``first_s``, doubling, at most ``max_s``."""

    first_s: float = 1.0
    max_s: float = 30.0

    def delay(self, failures: int) -> float:
        return min(self.max_s, self.first_s * 2 ** max(0, failures - 1))


async def stream_lines(
    source: LocationSource, reader: asyncio.StreamReader
) -> AsyncGenerator[str, None]:
    """Decoded lines until EOF; a line over ``LINE_LIMIT`` is skipped, not fatal."""
    while True:
        try:
            raw = await reader.readline()
        except ValueError:  # over the limit: the reader dropped it
            source.skip("overlong line")
            continue
        if not raw:
            return
        yield raw.decode("utf-8", "replace")


async def reconnecting_lines(
    source: LocationSource,
    opener: Opener,
    clock: Clock,
    backoff: Backoff,
    *,
    hint: str = "",
) -> AsyncGenerator[str, None]:
    """The receiver's lines across outages, until cancelled."""
    failures = 0
    ever_open = False
    while True:
        opened = False
        try:
            async with opener() as lines, contextlib.aclosing(lines):
                opened = True
                if ever_open:
                    source.stats.reconnects += 1
                    source.say(f"{source.describe} is back")
                ever_open = True
                source.forget("down")
                async for line in lines:
                    failures = 0
                    yield line
            why = "it closed the connection" if opened else "it ended"
        except OSError as e:  # refused, reset, unplugged (EIO), no permission...
            why = e.strerror or str(e) or type(e).__name__
        failures += 1
        delay = backoff.delay(failures)
        if opened:
            source.say(f"{source.describe} went away ({why}); reconnecting in {delay:g} s")
        else:
            more = f". {hint}" if hint else ""
            source.say_once(
                "down",
                f"cannot open {source.describe} ({why}); trying again every {backoff.max_s:g} s "
                f"at most{more}",
            )
        await clock.sleep(delay)
