"""Small task-ownership helpers shared by every room (a leaf: imports nothing of Murmur).

``Spawn`` is how a part starts a task it does not own: the session binds it to its
TaskGroup, so nothing a session started outlives it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["Spawn", "cancel_and_wait"]

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
