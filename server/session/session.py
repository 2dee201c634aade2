"""One ``Session`` per wearer's conversation: its life, its tasks, the calls serving it.

``run`` (a task the registry owns) holds the session's ``asyncio.TaskGroup``: the
ticker, the speaker, the results task when an agent is configured, and whatever the
parts spawn through ``Session.spawn`` (the listener's ASR worker, each delegation).
When the session ends, nothing it started outlives it. ``serve`` runs one call in a
TaskGroup of its own: the writer (the only task that talks to the call) and the
reader (client events → ``Inbound``). What the session is made of is built in
``build.py``; what each client event does is in ``inbound.py``.

A client half-close ends the session gently (queued speech is finished). A call that
vanishes only detaches the session: it waits, silent, for a resume (registry.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import Coroutine
from typing import Any, Protocol, cast

from server.codes import Code
from server.engine.fall import MOTION_HZ
from server.errors import (
    CapacityError,
    Fatal,
    ProtocolError,
    Recoverable,
    StreamClosed,
    TakenOverError,
    UnavailableError,
)
from server.events import (
    ClientEvent,
    DelegationUpdate,
    GoAway,
    Notice,
    ServerEvent,
    SessionReady,
    SessionStart,
    VideoEncoding,
)
from server.modes import profile
from server.runtime.base import ModelSession
from server.session.build import SessionParts, build_parts
from server.session.outbox import END
from server.session.services import SessionServices
from server.voice.codec import validate_format

__all__ = ["Session", "SessionLink"]

log = logging.getLogger(__name__)

# What a dropped call leaves queued that the call resuming it still gets.
_KEPT_FOR_RESUME: tuple[type[ServerEvent], ...] = (DelegationUpdate, Notice)
_TAKEN_OVER = "a newer connection resumed this session"


class SessionLink(Protocol):
    """The transport's side of a stream, in domain events."""

    async def recv(self) -> ClientEvent | Notice | None:
        """The next client event, a protocol Notice to pass on, or None at half-close."""

    async def send(self, event: ServerEvent) -> None: ...


class Session:
    @classmethod
    async def open(
        cls,
        services: SessionServices,
        start: SessionStart,
        *,
        device_id: str = "",
        session_id: str = "",
    ) -> Session:
        """Validate ``start``, open the model conversation off the loop, build the session.

        Opening allocates the session's KV cache (gigabytes on a GPU): it runs in
        the model's thread, and running out of memory means the server is full.
        """
        _validate(start)
        runtime = services.runtime
        instruction = start.instruction_override or profile(start.mode).instruction
        loop = asyncio.get_running_loop()
        try:
            model = await loop.run_in_executor(
                runtime.executor,
                functools.partial(
                    runtime.open_session, instruction, language=start.language or "en"
                ),
            )
        except Recoverable as e:
            if e.code is Code.MODEL_MEMORY:
                raise CapacityError(f"cannot open another session: {e.message}") from e
            raise UnavailableError(f"the model cannot open a session: {e.message}") from e
        try:
            return cls(services, start, model, device_id=device_id, session_id=session_id)
        except BaseException:
            await loop.run_in_executor(runtime.executor, model.close)
            raise

    def __init__(
        self,
        services: SessionServices,
        start: SessionStart,
        model: ModelSession,
        *,
        device_id: str = "",
        session_id: str = "",  # a session handed over from another frontend keeps its id
    ) -> None:
        self.services = services
        self.start = start
        self.model = model
        self.id = session_id or secrets.token_hex(8)
        self.resume_token = secrets.token_urlsafe(18)
        self.device_id = device_id
        self.attached = False  # a call is serving it now
        loop = asyncio.get_running_loop()
        self._end: asyncio.Future[BaseException] = loop.create_future()
        self._call: asyncio.Future[BaseException | None] | None = None  # the serving call's end
        self._served = False
        self._idle = asyncio.Event()  # no call is serving the session
        self._idle.set()
        self._attempts = 0  # calls that asked to serve the session, the newest wins
        self._tg: asyncio.TaskGroup | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._speaker: asyncio.Task[None] | None = None
        self._results_task: asyncio.Task[None] | None = None
        self.parts: SessionParts = build_parts(
            services, start, model, self.spawn, session_id=self.id
        )

    @property
    def stats(self) -> dict[str, int]:
        """Counts for the session's end-of-life log line (no content, only numbers)."""
        p = self.parts
        # Speech that did not play out, by why and what ("dropped_speech:superseded/alert").
        speech = {f"dropped_speech:{k}": n for k, n in sorted(p.speaker.dropped.items())}
        return {
            **p.inbound.stats,
            "notices": p.notices.sent,
            "dropped_notices": p.outbox.dropped,
            **speech,
        }

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Start a task this session owns: it ends, at the latest, with the session."""
        if self._tg is None:
            coro.close()
            raise RuntimeError("the session is not running")
        return self._tg.create_task(coro, name=f"{name}-{self.id}")

    async def run(self) -> None:
        """The session's life, across the calls that serve it (the registry owns this
        task): ticker, speaker, results and all the parts spawn. Ends at a half-close,
        a ``terminate``, or a failure; then every part is closed."""
        p = self.parts
        started_at = self.services.clock()
        error: BaseException | None = None
        try:
            try:
                async with asyncio.TaskGroup() as tg:
                    self._tg = tg
                    self._ticker = tg.create_task(
                        p.ticker.run(started_at), name=f"ticker-{self.id}"
                    )
                    self._speaker = tg.create_task(p.speaker.run(), name=f"speaker-{self.id}")
                    if p.delegations is not None:
                        self._results_task = tg.create_task(
                            self._results(), name=f"results-{self.id}"
                        )
                    tg.create_task(_raise_when(self._end), name=f"end-{self.id}")
            except* _Closed:
                pass
            except* Fatal as group:
                raise group.exceptions[0] from None
        except asyncio.CancelledError:
            error = UnavailableError("the server is stopping; reconnect in a moment")
            raise
        except BaseException as e:
            error = e
            raise
        finally:
            self._tg = None
            await self._cleanup()
            call, self._call = self._call, None
            if call is not None and not call.done():
                # The call serving the session ends with the session's own outcome.
                call.set_result(error)

    async def serve(self, link: SessionLink, *, resumed: bool = False) -> None:
        """Serve one call until the client half-closes (the session then ends).

        When the call vanishes (cancelled, or the stream breaks) the session is not
        ended: it is *detached* — nothing plays, nothing ticks, the model's memory,
        the mode and running delegations wait — and a later call may resume it. A
        newer call for this session takes over; this one then ends with ABORTED.
        """
        p = self.parts
        # Resumes may race (a phone retrying on two networks): the newest wins, and
        # the ones it overtook while they waited end as the attached call does.
        self._attempts += 1
        attempt = self._attempts
        if self._call is not None and not self._call.done():
            self._call.set_result(TakenOverError(_TAKEN_OVER))
        await self._idle.wait()  # the older call's writer must not take this one's events
        if attempt != self._attempts:
            raise TakenOverError(_TAKEN_OVER)
        self._idle.clear()
        call = self._call = asyncio.get_running_loop().create_future()
        # Speech, audio and traces queued for an earlier call are not replayed; how a
        # delegation went and the notices sent meanwhile are, after SessionReady.
        kept = p.outbox.clear(keep=_KEPT_FOR_RESUME)
        await p.outbox.put(self._ready())
        for event in kept:
            await p.outbox.put(event)
        if self.start.resume_token and not resumed and not self._served:
            await p.notices.send(
                Code.SESSION_RESUME_UNKNOWN,
                "the resume token is not known to this server (it restarted, or the "
                "session expired); a new session was started",
            )
        self._served = True
        self.attached = True
        p.ticker.hold(False)
        p.speaker.release()
        detach = True
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._writer(link), name=f"writer-{self.id}")
                tg.create_task(self._reader(link), name=f"reader-{self.id}")
                tg.create_task(_raise_when(call), name=f"call-{self.id}")
            detach = False
        except* StreamClosed:
            log.debug("session %s: the call ended under it", self.id)
        except* Fatal as group:
            detach = False
            raise group.exceptions[0] from None
        finally:
            if detach and self._call is call:
                self._call = None
                self.attached = False
                p.ticker.hold(True)
                p.speaker.hold("disconnected")
                for event in p.outbox.clear(keep=_KEPT_FOR_RESUME):
                    p.outbox.put_nowait(event)  # for the call that resumes
            self._idle.set()

    def terminate(self, error: Fatal | None = None) -> None:
        """End the session now: with ``error``'s status for its call (a revoked
        device, a takeover), or quietly (a detached session nobody resumed)."""
        if not self._end.done():
            self._end.set_result(error or _Closed())

    def go_away(self, reconnect_after_ms: int, reason: str) -> None:
        """The server is draining: tell the client to come back with its resume token."""
        self.parts.outbox.put_nowait(GoAway(reconnect_after_ms, reason))

    def _ready(self) -> SessionReady:
        return SessionReady(
            session_id=self.id,
            resume_token=self.resume_token,
            audio_in=self.start.audio_in,
            audio_out=self.start.audio_out,
            model=self.services.runtime.name,
            tick_hz=self.services.settings.server.tick_hz,
            mode=self.parts.engine.profile.mode,
            # Falls are detected from motion in every mode while the emergency path is on.
            motion_hz=MOTION_HZ if self.parts.emergency is not None else 0.0,
        )

    async def _cleanup(self) -> None:
        p = self.parts
        p.unsubscribe_tts()
        if p.delegations is not None:
            p.delegations.cancel_all("session end")
            await p.delegations.close()
        if p.listener is not None:
            await p.listener.close()
        # The session's KV cache is released in the model thread, after any step
        # still running there, never on the loop. The app shuts that thread down only
        # after every session has closed, so it is gone here only if the runtime was
        # closed under its sessions: the cache then goes with the process.
        try:
            closing = asyncio.get_running_loop().run_in_executor(
                self.services.runtime.executor, self.model.close
            )
        except RuntimeError:  # submitting refused: "cannot schedule new futures after shutdown"
            log.warning("session %s: the model thread is shut down; its cache stays", self.id)
        else:
            await closing

    async def _writer(self, link: SessionLink) -> None:
        while True:
            event = await self.parts.outbox.get()
            if event is END:
                return
            await link.send(cast(ServerEvent, event))

    async def _reader(self, link: SessionLink) -> None:
        p = self.parts
        while (event := await link.recv()) is not None:
            await p.inbound.handle(event)
        # Half-close: stop listening (a late transcript would queue speech nobody
        # plays), stop watching, finish what is being said, then end the stream.
        if p.listener is not None:
            await p.listener.close()
        p.ticker.stop()
        if self._results_task is not None:
            self._results_task.cancel()
        # asyncio.wait, not await: this call may be cancelled, the session's tasks not.
        assert self._ticker is not None and self._speaker is not None, "run() is not running"
        await asyncio.wait({self._ticker})  # the tick in flight may still queue a reply
        if p.delegations is not None:
            # Inside the session's group: their tasks must end before it can.
            p.delegations.cancel_all("session end")
            await p.delegations.close()
        p.speaker.close()
        await asyncio.wait({self._speaker})
        await p.outbox.put(END)
        self.terminate()

    async def _results(self) -> None:
        """Speak delegation results as soon as they arrive, not at the next tick."""
        p = self.parts
        assert p.delegations is not None
        while True:
            await p.delegations.wait_result()
            if p.engine.deliver_results() == 0:
                await asyncio.sleep(0)  # never spin if a result was taken elsewhere


class _Closed(Exception):
    """The session ended without an error (raised inside its group to stop it)."""


async def _raise_when(future: asyncio.Future[Any]) -> None:
    """Wait for ``future``; raise what it holds (an exception or an exception value)."""
    value = await future
    if isinstance(value, BaseException):
        raise value


def _validate(start: SessionStart) -> None:
    validate_format(start.audio_in, "in")
    validate_format(start.audio_out, "out")
    if start.video_encoding is not VideoEncoding.JPEG:
        raise ProtocolError(
            f"video encoding {start.video_encoding.value} is not supported by this "
            "server; supported: jpeg (one still per VideoFrame)"
        )
