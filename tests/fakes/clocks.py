"""Clocks for the bridge (and a server part's wall clock): virtual, or real and recorded.

Virtual clocks start at ``now`` = 100 s; their wall time is ``UNIX0`` + ``now``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable
from typing import TypeVar

from mobile_bridge.clock import Clock

__all__ = ["UNIX0", "ManualClock", "RecordingClock", "SteppingClock"]

T = TypeVar("T")
UNIX0 = 1_700_000_000.0


class ManualClock(Clock):
    """Virtual time: ``run`` lets every task settle, then wakes the earliest sleeper.

    ``time`` also stands in for a server part's wall clock (``clock=clock.time``), moved
    by setting ``now``.
    """

    SETTLE_ROUNDS = 50

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return UNIX0 + self.now

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._order), fut))
        await fut

    async def run(self, aw: Awaitable[T]) -> T:
        task = asyncio.ensure_future(aw)
        idle = 0
        while not task.done():
            for _ in range(self.SETTLE_ROUNDS):
                await asyncio.sleep(0)  # a yield, not a wait: every runnable task moves on
            if task.done() or self._wake_next():
                idle = 0
                continue
            idle += 1  # nobody sleeps on the clock: a worker thread is still busy
            assert idle < 20_000, "deadlock: the task waits on something that never comes"
        return task.result()

    def _wake_next(self) -> bool:
        while self._sleepers:
            due, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():  # cancelled timers stay in the heap until here
                self.now = max(self.now, due)
                fut.set_result(None)
                return True
        return False


class SteppingClock(Clock):
    """Virtual time for one reader at a time: each sleep moves the clock on at once."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return UNIX0 + self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class RecordingClock(Clock):
    """Real time, except that sleeps are recorded and last ``scale`` × as long."""

    def __init__(self, scale: float = 0.0) -> None:
        self.scale = scale
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(seconds * self.scale)
