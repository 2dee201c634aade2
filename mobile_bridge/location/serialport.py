"""Fixes from a GPS receiver's serial port (USB or UART) speaking NMEA 0183.

No pyserial: the device is opened non-blocking, set to raw at the asked baud with the
standard library's ``termios`` (what ``stty -F DEV 9600 raw`` does), and read through
asyncio's pipe transport, so a read never holds a thread and cancelling is instant.
Something that is not a terminal (a FIFO another program writes NMEA into) is read
as it is. Unplugged (EIO, or the node vanishing) → said, and opened again with backoff
when it comes back. POSIX only (Linux, macOS).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.location.base import Fix, LocationError, LocationSource, Say, Skipped
from mobile_bridge.location.lines import LINE_LIMIT, Backoff, reconnecting_lines, stream_lines
from mobile_bridge.location.nmea import NmeaDecoder

__all__ = ["DEFAULT_BAUD", "SerialNmeaSource", "SerialOptions", "configure_tty", "nmea_fixes"]

DEFAULT_BAUD = 9600  # most USB receivers today; the NMEA standard's own is 4800


@dataclass(frozen=True)
class SerialOptions:
    path: str
    baud: int = DEFAULT_BAUD
    default_accuracy_m: float = 10.0  # no GGA/GST to say better
    backoff: Backoff = field(default_factory=Backoff)


def _termios() -> Any:
    try:
        import termios
    except ImportError:  # Windows
        raise LocationError(
            "reading a serial GPS needs a POSIX system (Linux, macOS); on Windows run gpsd "
            "in WSL, or replay an NMEA file"
        ) from None
    return termios


def configure_tty(fd: int, baud: int) -> bool:
    """Raw 8N1 at ``baud``, no echo, modem lines ignored; False: not a terminal (left as is)."""
    termios = _termios()
    speed = getattr(termios, f"B{baud}", None)
    if speed is None:
        raise LocationError(f"baud {baud} is not one this system supports (try 4800 or 9600)")
    try:
        iflag, oflag, cflag, lflag, _, _, cc = termios.tcgetattr(fd)
    except termios.error:
        return False
    iflag &= ~(
        termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR
    ) & ~(termios.IGNCR | termios.ICRNL | termios.IXON)
    oflag &= ~termios.OPOST
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag &= ~(termios.CSIZE | termios.PARENB | termios.CSTOPB)
    cflag |= termios.CS8 | termios.CLOCAL | termios.CREAD
    termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, speed, speed, cc])
    return True


async def nmea_fixes(
    source: LocationSource, lines: AsyncIterator[str], decoder: NmeaDecoder
) -> AsyncIterator[Fix]:
    """The fixes in a stream of NMEA lines; bad lines skipped and counted on ``source``."""
    async for line in lines:
        if not line.strip():
            continue
        try:
            fix = decoder.feed(line)
        except Skipped as e:
            source.skip(e.reason, e.detail)
            continue
        if fix is not None:
            yield source.fixed(fix)


class SerialNmeaSource(LocationSource):
    """An NMEA receiver on a serial device, reopened when unplugged, until cancelled."""

    def __init__(
        self,
        options: SerialOptions,
        *,
        clock: Clock | None = None,
        say: Say | None = None,
    ) -> None:
        super().__init__(say)
        _termios()  # fail now, not on the first read
        self.options = options
        self._clock = clock or SystemClock()

    @property
    def describe(self) -> str:
        return f"the GPS on {self.options.path} at {self.options.baud} baud"

    async def fixes(self) -> AsyncIterator[Fix]:
        lines = reconnecting_lines(
            self,
            self._open,
            self._clock,
            self.options.backoff,
            hint=(
                "Is it plugged in, and may you read it? (Linux: `sudo usermod -aG dialout "
                "$USER`, then log in again)"
            ),
        )
        decoder = NmeaDecoder(self.options.default_accuracy_m)
        async with contextlib.aclosing(lines):
            async for fix in nmea_fixes(self, lines, decoder):
                yield fix

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[AsyncGenerator[str, None]]:
        fd = os.open(self.options.path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            configure_tty(fd, self.options.baud)
            file = os.fdopen(fd, "rb", buffering=0)
        except BaseException:
            os.close(fd)
            raise
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), file
            )
        except ValueError:  # a regular file: the pipe transport takes only streams
            file.close()
            raise LocationError(
                f"{self.options.path} is a file, not a device: replay it with "
                f"--location nmea:{self.options.path}"
            ) from None
        except BaseException:
            file.close()
            raise
        try:
            yield stream_lines(self, reader)
        finally:
            transport.close()
