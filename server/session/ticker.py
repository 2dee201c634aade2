"""The session's scheduling loop: when each tick fires, with which frame.

``TickClock`` (engine/clock.py) does the arithmetic; this loop does the waiting.
Time and sleeping are injected (``clock``, ``sleep``), so the session harness runs
it on virtual time. A tick fires as soon as a fresh frame of its own period (received at most half a
period before it is due) arrives once the period has passed, or at the frame-wait
deadline with the last frame when none came.

A step that outruns ``slow_step_s`` is said once (``on_slow``, a synchronous call on
the loop) while it still runs: ticks coalesce behind it, and the wearer's phone
should know why nothing is said. A timer, not a task, so an ordinary tick costs
nothing more and its order against other tasks does not change.

A frame that changed the view (``wake``, from engine/scene.py's ``FrameBudget``) ends
the wait for the next tick at once, unless that tick is due within ``EARLY_MIN_S`` or
the last one fired less than that ago: a car coming into a still view is decided on
when its frame lands, not up to a period later. Its label is the elapsed time to a
tenth of a second, so it never repeats the tick before's; the period restarts from its
frame.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from server.engine.clock import TickClock
from server.runtime.base import Frame
from server.session.frames import FrameSlot
from server.telemetry.metrics import TICK_SLIP, TICKS, TICKS_COALESCED

__all__ = ["EARLY_MIN_S", "Ticker"]

EARLY_MIN_S = 0.2  # an early tick saves at least this, and follows a tick by at least this


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
        slow_step_s: float = 0.0,
        on_slow: Callable[[float], None] | None = None,
        early: bool = False,
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
        self._slow_s = slow_step_s if on_slow is not None else 0.0
        self._on_slow = on_slow
        self._slow_said = False  # said for this run of slow steps: not again until one is not
        self._this_slow = False  # the step in flight outran slow_step_s
        self._early = early  # a changed view may wake the ticker (``wake``)
        self._woken = False
        self._due = self._fired = float("-inf")  # the tick napped towards; the last fired

    def pause(self, paused: bool) -> None:
        self._paused = paused

    def hold(self, held: bool) -> None:
        """No stream attached: no ticks (nothing is seen or heard); the clock runs on."""
        self._held = held

    def wake(self) -> None:
        """An accepted frame changed the view: tick now, if that saves ``EARLY_MIN_S``."""
        now = self._clock()
        if not self._early or self._napping is None or self._stopping or self._woken:
            return
        if self._due - now >= EARLY_MIN_S and now - self._fired >= EARLY_MIN_S:
            self._woken = True
            self._napping.cancel()

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
            self._due = plan.due
            if await self._nap(plan.due - self._clock()):
                return
            early, self._woken = self._woken, False  # its frame is here: no waiting for one
            eligible = self._clock() if early else max(plan.due, self._clock())
            # A frame from more than half a period before the tick is due belongs to
            # the period before (the first frame, which started the clock, always
            # does): the camera's next one is about to land, so it is waited for like
            # a missing one, and used only if none comes by the deadline. Deciding on
            # it would put the model one period behind the world, tick after tick.
            since = plan.due - self._period / 2
            if not (early or self._slot.fresh_since(since)):
                got = await self._slot.wait_fresh(plan.deadline - self._clock(), since=since)
                eligible = self._clock() if got else max(plan.deadline, eligible)
            if self._stopping:
                return
            fired = self._fired = self._clock()
            slip_ms = max(0.0, fired - eligible) * 1000
            label = round(fired - clock.start, 1) if early else clock.label(fired)
            frame_at = None
            if not (self._paused or self._held):
                frame, fresh = self._slot.take()
                frame_at = frame.received_at if frame is not None and fresh else None
                TICKS.inc()
                TICKS_COALESCED.inc(coalesced)
                TICK_SLIP.observe(slip_ms / 1000)
                alarm = self._alarm()
                try:
                    await self._tick(
                        label, frame, fresh=fresh, slip_ms=slip_ms, coalesced=coalesced
                    )
                finally:
                    if alarm is not None:
                        alarm.cancel()
                        self._slow_said = self._slow_said and self._this_slow
            coalesced = clock.advance(fired, self._clock(), frame_at)

    def _alarm(self) -> asyncio.TimerHandle | None:
        """The timer that says a step is slow; None when that is off."""
        if self._slow_s <= 0:
            return None
        self._this_slow = False
        return asyncio.get_running_loop().call_later(self._slow_s, self._slow)

    def _slow(self) -> None:
        self._this_slow = True
        if not self._slow_said and self._on_slow is not None:
            self._slow_said = True
            self._on_slow(self._slow_s)

    async def _nap(self, delay: float) -> bool:
        """Sleep ``delay`` seconds; True if the ticker is stopping instead."""
        if delay > 0 and not self._stopping:
            self._napping = asyncio.ensure_future(self._sleep(delay))
            try:
                await self._napping
            except asyncio.CancelledError:
                task = asyncio.current_task()
                ours = self._stopping or self._woken  # stop() or wake(), not the task's own
                if not (ours and task is not None and not task.cancelling()):
                    raise
            finally:
                self._napping = None
        return self._stopping
