"""When a source's next frame is due, at a rate that may change while it waits.

A source captures at its own rate (``--fps``), capped by whoever asks for less: the
server's ``CaptureHint`` (a still scene; ``set_capture_rate``) and the device's own low
battery. A change wakes a waiting ``wait`` at once, so a restored rate takes effect at
the next frame, not after the long interval of the lower one; a lowered rate simply
puts the next frame further out. Late frames catch up once, never in bursts.
"""

from __future__ import annotations

import asyncio
import math

from mobile_bridge.clock import Clock

__all__ = ["FramePacer"]


class FramePacer:
    def __init__(self, fps: float, clock: Clock) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.own_fps = fps
        self._clock = clock
        self._caps: dict[str, float] = {}  # who asks for less: "server", "battery"
        self._next_at: float | None = None
        self._slot: float | None = None  # when the frame in hand was due
        self._changed = asyncio.Event()

    @property
    def fps(self) -> float:
        """The rate in force: the source's own, or the lowest cap below it."""
        return min((self.own_fps, *self._caps.values()))

    def cap(self, who: str, fps: float | None) -> bool:
        """``who`` asks for at most ``fps`` (None, 0 or not a number: no cap of theirs).
        True when the rate in force changed."""
        before = self.fps
        if fps is None or not math.isfinite(fps) or fps <= 0:
            self._caps.pop(who, None)
        else:
            self._caps[who] = fps
        if self.fps == before:
            return False
        if self._slot is not None:
            self._next_at = max(self._slot + 1.0 / self.fps, self._clock.monotonic())
        self._changed.set()
        return True

    async def wait(self) -> None:
        """Until the next frame is due (at once for the first)."""
        if self._next_at is None:
            self._next_at = self._clock.monotonic()
        while (delay := self._next_at - self._clock.monotonic()) > 0:
            self._changed.clear()
            nap = asyncio.ensure_future(self._clock.sleep(delay))
            woken = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait([nap, woken], return_when=asyncio.FIRST_COMPLETED)
            finally:
                nap.cancel()
                woken.cancel()
            if not woken.done() or woken.cancelled():
                break  # slept it out (a clock that sleeps short is trusted, as before)
        self._slot = self._next_at

    def done(self) -> None:
        """The frame due at the last ``wait`` is taken: the next is due one period on."""
        period = 1.0 / self.fps
        slot = self._slot if self._slot is not None else self._clock.monotonic()
        self._next_at = max(slot + period, self._clock.monotonic() - period)
