"""The session's scheduling loop: when each tick fires, with which frame.

``TickClock`` (engine/clock.py) does the arithmetic; this loop does the waiting.
Time and sleeping are injected (``clock``, ``sleep``), so the session harness runs
it on virtual time. A tick fires as soon as a fresh frame of its own period (received at most half a
period before it is due) arrives once the period has passed, or at the frame-wait
deadline with the last frame when none came.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from server.engine.clock import TickClock
from server.runtime.base import Frame
from server.session.frames import FrameSlot
from server.telemetry.metrics import TICK_SLIP, TICKS, TICKS_COALESCED

__all__ = ["Ticker"]


class TickFn(Protocol):
    async def __call__(
        self, tick_s: float, frame: Frame | None, *, fresh: bool, slip_ms: float, coalesced: int
    ) -> object: ...


class Ticker:
    def __init__(
        self,
        slot: FrameSlot,
        tick: TickFn,
        *,
        period_s: float,
        frame_wait_s: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._slot = slot
        self._tick = tick
        self._period = period_s
        self._frame_wait = frame_wait_s
        self._clock = clock
        self._sleep = sleep
        self._stopping = False
        self._napping: asyncio.Future[None] | None = None
        self._paused = False  # the user paused watching: no ticks, the clock runs on
        self._held = False

    def pause(self, paused: bool) -> None:
        self._paused = paused

    def hold(self, held: bool) -> None:
        """No stream attached: no ticks (nothing is seen or heard); the clock runs on."""
        self._held = held

    def stop(self) -> None:
        """Finish the tick in flight (it may still queue a reply), then return."""
        self._stopping = True
        if self._napping is not None:
            self._napping.cancel()

    async def run(self, started_at: float) -> None:
        # Time zero is the first frame: the camera's later frames then arrive just
        # as ticks fall due. Without video, ticks start one period in.
        latest = self._slot.latest if await self._slot.wait_fresh(self._period) else None
        clock = TickClock(
            latest.received_at if latest is not None else started_at,
            self._period,
            self._frame_wait,
        )
        coalesced = 0
        while not self._stopping:
            plan = clock.plan()
            if await self._nap(plan.due - self._clock()):
                return
            eligible = max(plan.due, self._clock())
            # A frame from more than half a period before the tick is due belongs to
            # the period before (the first frame, which started the clock, always
            # does): the camera's next one is about to land, so it is waited for like
            # a missing one, and used only if none comes by the deadline. Deciding on
            # it would put the model one period behind the world, tick after tick.
            since = plan.due - self._period / 2
            if not self._slot.fresh_since(since):
                got = await self._slot.wait_fresh(plan.deadline - self._clock(), since=since)
                eligible = self._clock() if got else max(plan.deadline, eligible)
            if self._stopping:
                return
            fired = self._clock()
            slip_ms = max(0.0, fired - eligible) * 1000
            frame_at = None
            if not (self._paused or self._held):
                frame, fresh = self._slot.take()
                frame_at = frame.received_at if frame is not None and fresh else None
                TICKS.inc()
                TICKS_COALESCED.inc(coalesced)
                TICK_SLIP.observe(slip_ms / 1000)
                await self._tick(
                    clock.label(fired), frame, fresh=fresh, slip_ms=slip_ms, coalesced=coalesced
                )
            coalesced = clock.advance(fired, self._clock(), frame_at)

    async def _nap(self, delay: float) -> bool:
        """Sleep ``delay`` seconds; True if the ticker is stopping instead."""
        if delay > 0 and not self._stopping:
            self._napping = asyncio.ensure_future(self._sleep(delay))
            try:
                await self._napping
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not (self._stopping and task is not None and not task.cancelling()):
                    raise
            finally:
                self._napping = None
        return self._stopping
