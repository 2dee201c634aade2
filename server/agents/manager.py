"""The delegation manager: background questions run while the session keeps watching.

One ``DelegationManager`` per process holds the agent and the global limit; each
session gets a ``SessionDelegations`` from ``manager.session(emit, language,
spawn=...)``. Every task it runs (one per question, and the update emitter while
updates wait) is made with that ``spawn`` (the session's task group) and never
raises, so a failing agent cannot take the session down; ``close`` leaves none of
them running.

- ``start`` is synchronous and returns a task id at once; the session hears a filler
  (the engine's job) while the agent works. The newest question wins: at the
  per-session limit the oldest running question is cancelled.
- Each task's ``DelegationUpdate``\\s go out in order, STARTED → RUNNING → DONE |
  FAILED | CANCELLED (STARTED → FAILED when every agent is busy and the queue is
  full, STARTED → CANCELLED when cancelled while queued). They are posted to one
  per-session queue that a single emitter task drains, so posting never blocks a
  tick and updates of every task keep their order.
- Results wait in the session until ``take_results`` hands them out, each exactly
  once; ``wait_result`` wakes a waiter as soon as one arrives. A failure yields a
  result too (``ok=False``, a localised apology), so the user is never left waiting.
- ``cancel_all`` cancels synchronously; a command agent kills its process group
  while its task unwinds, and CANCELLED is posted only after that cleanup. ``join``
  (or ``close``) awaits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from server.agents.base import Agent, AgentError, DelegationRequest
from server.events import DelegationState, DelegationUpdate
from server.modes.phrases import apology, busy
from server.tasks import Spawn, cancel_and_wait
from server.telemetry.metrics import DELEGATIONS

__all__ = ["DelegationManager", "DelegationResult", "Emit", "SessionDelegations"]

log = logging.getLogger(__name__)

Emit = Callable[[DelegationUpdate], Awaitable[None]]

# How long ``close`` lets the last updates reach a live stream before dropping them.
_FLUSH_S = 1.0
_SEEN_SPOKEN = 32  # recent spoken answers remembered for de-duplication
_OUTCOMES = (DelegationState.DONE, DelegationState.FAILED, DelegationState.CANCELLED)


@dataclass(frozen=True, slots=True)
class DelegationResult:
    task_id: str
    question: str
    spoken: str  # ready for speech: the answer, or an apology when ok is False
    detail: str = ""
    ok: bool = True
    urgent: bool = False


class DelegationManager:
    """The process-wide side: one agent, a global limit on questions in flight."""

    def __init__(
        self,
        agent: Agent,
        *,
        global_limit: int = 4,
        per_session_limit: int = 1,
        timeout_s: float = 60.0,
        queue_limit: int | None = None,
    ) -> None:
        if global_limit < 1 or per_session_limit < 1:
            raise ValueError("delegation limits must be at least 1")
        self.agent = agent
        self.global_limit = global_limit
        self.per_session_limit = per_session_limit
        self.timeout_s = timeout_s
        # Questions allowed to wait for a free agent; beyond that a question fails fast.
        self.queue_limit = global_limit if queue_limit is None else queue_limit
        self._slots = asyncio.Semaphore(global_limit)
        self.running = 0
        self.waiting = 0
        self._sessions: weakref.WeakSet[SessionDelegations] = weakref.WeakSet()

    def session(self, emit: Emit, language: str = "en", *, spawn: Spawn) -> SessionDelegations:
        s = SessionDelegations(self, emit, language, spawn=spawn)
        self._sessions.add(s)
        return s

    async def aclose(self) -> None:
        """Close every session's delegations, then the agent's connections."""
        for s in list(self._sessions):
            await s.close()
        await self.agent.aclose()

    # ------------------------------------------------------------------ slots

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[bool]:
        """Hold one of the ``global_limit`` agents for the ``async with`` block.

        Yields True once an agent is free, or False (holding nothing) when the queue
        of waiting questions is full or the wait outlasts ``timeout_s``. The slot is
        given back however the block ends, cancellation included.
        """
        granted = await self._wait_for_slot()
        try:
            yield granted
        finally:
            if granted:
                self.running -= 1
                self._slots.release()

    async def _wait_for_slot(self) -> bool:
        if self._slots.locked() and self.waiting >= self.queue_limit:
            return False
        self.waiting += 1
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            return False
        finally:
            self.waiting -= 1
        self.running += 1
        return True


class _UpdateFeed:
    """One session's ``DelegationUpdate``\\s, sent in the order posted without ever
    blocking the poster: a queue that a single emitter task drains while updates wait
    (spawned on demand, so nothing idles in the owner's task group)."""

    def __init__(self, emit: Emit, spawn: Spawn) -> None:
        self._emit = emit
        self._spawn = spawn
        self._queue: asyncio.Queue[DelegationUpdate] = asyncio.Queue()
        self._emitter: asyncio.Task[None] | None = None  # runs while updates wait
        self._stopped = False  # closed: nothing more goes out

    def post(self, update: DelegationUpdate) -> None:
        if self._stopped:
            return
        self._queue.put_nowait(update)
        if self._emitter is not None and not self._emitter.done():
            return  # it takes this one too: it checks for more after each update
        updates = self._send_waiting()
        try:
            self._emitter = self._spawn(updates, "delegation-updates")
        except RuntimeError:  # the owner's task group has ended: no one to tell
            updates.close()
            while not self._queue.empty():
                dropped = self._queue.get_nowait()  # its question and summary are not logged
                log.debug(
                    "dropped update %s %s: the session is ending", dropped.task_id, dropped.state
                )
                self._queue.task_done()

    async def close(self, flush_s: float) -> None:
        """Give what waits up to ``flush_s`` to go out, then drop the rest and stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(flush_s):
                await self._queue.join()
        emitter, self._emitter = self._emitter, None
        self._stopped = True
        await cancel_and_wait(emitter)

    async def _send_waiting(self) -> None:
        while not self._queue.empty():
            update = self._queue.get_nowait()
            try:
                await self._emit(update)
            except Exception:  # a gone stream must not stop later sessions' cleanup
                log.exception("could not emit update %s %s", update.task_id, update.state)
            finally:
                self._queue.task_done()


class SessionDelegations:
    """One session's background questions, their updates and their results."""

    def __init__(
        self, manager: DelegationManager, emit: Emit, language: str, *, spawn: Spawn
    ) -> None:
        self._manager = manager
        self._spawn = spawn
        self.language = language
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancel_reason: dict[str, str] = {}
        self._results: deque[DelegationResult] = deque()
        self._ready = asyncio.Event()
        self._seen_spoken: deque[str] = deque(maxlen=_SEEN_SPOKEN)
        self._updates = _UpdateFeed(emit, spawn)
        self._closed = False

    # ------------------------------------------------------------------ API

    @property
    def active(self) -> tuple[str, ...]:
        """Ids of the questions still running or queued (not being cancelled)."""
        return tuple(t for t in self._tasks if t not in self._cancel_reason)

    def start(
        self,
        question: str,
        *,
        frames: tuple[bytes, ...] = (),
        location: str | None = None,
        context: str = "",
        barcodes: tuple[str, ...] = (),
    ) -> str:
        """Hand ``question`` to the agent; returns its task id at once."""
        if self._closed:
            raise RuntimeError("this session's delegations are closed")
        # The newest question wins: the user moved on from the older one.
        active = self.active
        for old in active[: max(0, len(active) - self._manager.per_session_limit + 1)]:
            self.cancel(old, "replaced by a newer question")
        task_id = "d-" + secrets.token_hex(4)
        request = DelegationRequest(question, self.language, frames, location, context, barcodes)
        self._post(task_id, DelegationState.STARTED, question)
        task = self._spawn(self._work(task_id, request), f"delegation-{task_id}")
        self._tasks[task_id] = task
        task.add_done_callback(lambda t: self._finished(task_id, question, t))
        return task_id

    def cancel(self, task_id: str, reason: str) -> bool:
        """Cancel one question; False when it is not running."""
        task = self._tasks.get(task_id)
        if task is None or task.done() or task_id in self._cancel_reason:
            return False
        self._cancel_reason[task_id] = reason
        task.cancel(reason)
        return True

    def cancel_all(self, reason: str) -> None:
        """Cancel everything running or queued and drop answers not yet handed out
        ("never mind", a mode change, the session's end). Returns at once; ``join``
        awaits the cleanup."""
        for task_id in list(self._tasks):
            self.cancel(task_id, reason)
        self._results.clear()
        self._ready.clear()

    def take_results(self) -> list[DelegationResult]:
        """The results that arrived since the last call, oldest first; never blocks.
        Each result is handed out once."""
        out = list(self._results)
        self._results.clear()
        self._ready.clear()
        return out

    async def wait_result(self) -> None:
        """Return as soon as a result is waiting for ``take_results``."""
        await self._ready.wait()

    async def join(self) -> None:
        """Wait until every question has finished (cancelled ones: cleaned up)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            await asyncio.sleep(0)  # let done callbacks run

    async def close(self) -> None:
        """Cancel what runs, wait for its cleanup, deliver the last updates; no task
        of this session's delegations is left running."""
        if self._closed:
            return
        self.cancel_all("session end")
        self._closed = True
        await self.join()
        await self._updates.close(_FLUSH_S)

    # ------------------------------------------------------------------ the task

    async def _work(self, task_id: str, request: DelegationRequest) -> None:
        try:
            await self._ask(task_id, request)
        except Exception as e:  # a bug here must not end the session's task group
            log.exception("delegation %s crashed", task_id)
            self._fail(
                task_id,
                request.question,
                f"internal error: {type(e).__name__}",
                apology(self.language),
            )

    async def _ask(self, task_id: str, request: DelegationRequest) -> None:
        m = self._manager
        async with m.slot() as granted:
            if not granted:
                reason = (
                    f"all {m.global_limit} background agents are busy and {m.waiting} "
                    "questions are waiting; ask again in a moment"
                )
                self._fail(task_id, request.question, reason, busy(self.language))
                return
            try:
                self._post(task_id, DelegationState.RUNNING, request.question)
                answer = await m.agent.answer(request, m.timeout_s)
            except AgentError as e:
                log.warning("delegation %s failed: %s", task_id, e.message)
                self._fail(task_id, request.question, e.message, apology(self.language))
                return
        self._post(task_id, DelegationState.DONE, request.question, answer.spoken)
        key = " ".join(answer.spoken.casefold().split())
        if key in self._seen_spoken:
            return  # the same words were already handed out in this session
        self._seen_spoken.append(key)
        self._deliver(
            DelegationResult(
                task_id, request.question, answer.spoken, answer.detail, True, answer.urgent
            )
        )

    def _finished(self, task_id: str, question: str, task: asyncio.Task[None]) -> None:
        # A done callback, so that a task cancelled before it ever ran still reports.
        self._tasks.pop(task_id, None)
        reason = self._cancel_reason.pop(task_id, "cancelled")
        if task.cancelled():
            self._post(task_id, DelegationState.CANCELLED, question, reason)

    def _fail(self, task_id: str, question: str, reason: str, spoken: str) -> None:
        self._post(task_id, DelegationState.FAILED, question, reason)
        self._deliver(DelegationResult(task_id, question, spoken, "", ok=False))

    def _deliver(self, result: DelegationResult) -> None:
        self._results.append(result)
        self._ready.set()

    def _post(self, task_id: str, state: DelegationState, question: str, summary: str = "") -> None:
        if state in _OUTCOMES:
            DELEGATIONS.labels(state.value).inc()
        self._updates.post(DelegationUpdate(task_id, state, question, summary))
