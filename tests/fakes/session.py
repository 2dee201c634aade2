"""What a session is handed: its task spawner, the sink for its delegations' updates,
and the transport's side of its stream."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.errors import StreamClosed
from server.events import AudioOut, ClientEvent, DelegationState, DelegationUpdate, ServerEvent

__all__ = ["DelegationRecorder", "ScriptedLink", "Spawner"]


class Spawner:
    """A session's ``spawn(coro, name)`` for tests: named tasks on the running loop,
    kept so a test can check that none of them outlives its owner's ``close()``."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    def __call__(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.append(task)
        return task

    @property
    def names(self) -> list[str]:
        return [t.get_name() for t in self.tasks]

    @property
    def running(self) -> list[str]:
        """Names of the spawned tasks that have not finished."""
        return [t.get_name() for t in self.tasks if not t.done()]


@dataclass
class DelegationRecorder:
    """A session's delegation ``emit``: keeps every ``DelegationUpdate``."""

    updates: list[DelegationUpdate] = field(default_factory=list)

    async def emit(self, update: DelegationUpdate) -> None:
        self.updates.append(update)

    def states(self, task_id: str) -> list[DelegationState]:
        return [u.state for u in self.updates if u.task_id == task_id]

    def last(self, task_id: str) -> DelegationUpdate:
        return [u for u in self.updates if u.task_id == task_id][-1]


class ScriptedLink:
    """The transport's side of a session's stream (``SessionLink``), scripted: client
    events at (virtual) times, then a half-close — or, with ``drop``, a lost network."""

    def __init__(
        self, script: Sequence[tuple[float, ClientEvent]], end_at: float, *, drop: bool = False
    ) -> None:
        self._script = sorted(script, key=lambda item: item[0])
        self._end_at = end_at
        self._drop = drop  # at end_at the network goes away instead of a half-close
        self.sent: list[tuple[float, ServerEvent]] = []

    async def recv(self) -> ClientEvent | None:
        loop = asyncio.get_running_loop()
        if self._script:
            at, event = self._script.pop(0)
            await asyncio.sleep(max(0.0, at - loop.time()))
            return event
        await asyncio.sleep(max(0.0, self._end_at - loop.time()))
        if self._drop:
            raise StreamClosed("the test dropped the network")
        return None

    def types(self) -> list[str]:
        return [type(e).__name__ for _, e in self.sent if not isinstance(e, AudioOut)]

    async def send(self, event: ServerEvent) -> None:
        self.sent.append((asyncio.get_running_loop().time(), event))
