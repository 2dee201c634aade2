"""The hand-off from a capture thread (a camera's decoder, a microphone's reader) to the
event loop.

Devices block: reading them happens on a thread of their own, and the loop only ever
awaits this buffer, so a stalled device never stalls the link.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Generic, TypeVar

__all__ = ["CaptureBuffer"]

T = TypeVar("T")


class CaptureBuffer(Generic[T]):
    """Items put by one capture thread, taken in order on the event loop.

    Holds at most ``maxlen`` and drops the oldest beyond that (counted in ``dropped``):
    1 for video, where only the newest frame matters, more for audio, where a short
    stall of the loop must not cost samples. ``fail`` ends the buffer with an error
    that ``get`` raises once the items before it are taken.

    Build it on the event loop it is read from (it wakes that loop from the thread).
    """

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self._loop = asyncio.get_running_loop()
        self._items: deque[T] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._ready = asyncio.Event()
        self._error: BaseException | None = None
        self.latest: T | None = None  # the newest item put, taken or not
        self.put_count = 0
        self.dropped = 0

    @property
    def failed(self) -> BaseException | None:
        return self._error

    def put(self, item: T) -> None:
        """From the capture thread."""
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(item)
            self.latest = item
            self.put_count += 1
        self._wake()

    def fail(self, error: BaseException) -> None:
        """From the capture thread: nothing more will come, and why."""
        with self._lock:
            if self._error is None:
                self._error = error
        self._wake()

    async def get(self) -> T:
        """The oldest item not yet taken; waits for one, raises the failure after the last."""
        while True:
            # Cleared before looking: a put after the look sets it again, so none is missed.
            self._ready.clear()
            with self._lock:
                if self._items:
                    return self._items.popleft()
                if self._error is not None:
                    raise self._error
            await self._ready.wait()

    def _wake(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:  # the loop has closed; nobody is waiting any more
            pass
