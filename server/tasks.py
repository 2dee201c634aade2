"""Small task- and pool-ownership helpers shared by every room (a leaf: imports nothing
of Murmur).

``Spawn`` is how a part starts a task it does not own: the session binds it to its
TaskGroup, so nothing a session started outlives it. ``WorkerPool`` is how a backend
holds the thread pool it runs in: the app's, borrowed, or (standalone) its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

__all__ = ["Spawn", "WorkerPool", "cancel_and_wait"]

# spawn(coro, name) -> the task, in its owner's TaskGroup
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait until it has unwound.

    The task's own cancellation ends here; a cancellation of the caller goes on.
    """
    if task is None or task.done():
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


class WorkerPool:
    """The thread pool a backend runs its blocking work in, and who shuts it down.

    Given the app's pool, the backend borrows it: the app shuts it down last, after
    every backend has closed. Built standalone (tests, benchmarks), the backend makes
    its own and owns it: its ``close`` calls ``WorkerPool.close``, which shuts that one
    down. Closing twice is harmless.
    """

    def __init__(self, given: Executor | None, *, prefix: str, workers: int = 1) -> None:
        self.owned = given is None
        self.executor: Executor = (
            ThreadPoolExecutor(workers, thread_name_prefix=prefix) if given is None else given
        )

    def close(self, *, wait: bool = False) -> None:
        """Shut an owned pool down, dropping queued work; a borrowed one is left alone."""
        if self.owned:
            self.executor.shutdown(wait=wait, cancel_futures=True)
