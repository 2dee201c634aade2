"""The bridge's time source, injected so tests can run a session on virtual time."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod

__all__ = ["Clock", "SystemClock"]


class Clock(ABC):
    """Monotonic seconds for pacing and latency, unix seconds for capture stamps."""

    @abstractmethod
    def monotonic(self) -> float: ...

    @abstractmethod
    def time(self) -> float: ...

    @abstractmethod
    async def sleep(self, seconds: float) -> None: ...


class SystemClock(Clock):
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
