"""One ``Session`` per ``Converse`` stream: its lifecycle, its tasks, its one writer.

The session owns one ``asyncio.TaskGroup``. In it run the writer (the only task
that talks to the call), the reader (client events → ``Inbound``), the ticker,
the speaker, the results task when an agent is configured, and whatever the parts
spawn through ``Session.spawn`` (the listener's ASR worker, each delegation): when
the session ends, nothing it started outlives it. What the session is made of is
built in ``build.py``; what each client event does is in ``inbound.py``.

A client half-close ends the session gently (queued speech is finished); a client
that vanishes cancels the task group and every task and child with it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import Coroutine
from typing import Any, Protocol, cast

from server.codes import Code
from server.errors import CapacityError, Fatal, ProtocolError, Recoverable, UnavailableError
from server.events import (
    ClientEvent,
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


class SessionLink(Protocol):
    """The transport's side of a stream, in domain events."""

    async def recv(self) -> ClientEvent | Notice | None:
        """The next client event, a protocol Notice to pass on, or None at half-close."""

    async def send(self, event: ServerEvent) -> None: ...


class Session:
    @classmethod
    async def open(
        cls, services: SessionServices, link: SessionLink, start: SessionStart
    ) -> Session:
        """Validate ``start``, open the model conversation off the loop, build the session.

        Opening allocates the session's KV cache (gigabytes on a GPU): it runs in
        the model's thread, and running out of memory means the server is full.
        """
        cls._validate(start)
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
            return cls(services, link, start, model)
        except BaseException:
            await loop.run_in_executor(runtime.executor, model.close)
            raise

    def __init__(
        self,
        services: SessionServices,
        link: SessionLink,
        start: SessionStart,
        model: ModelSession,
    ) -> None:
        self.services = services
        self.link = link
        self.start = start
        self.model = model
        self.id = secrets.token_hex(8)
        self.resume_token = secrets.token_urlsafe(18)
        self._tg: asyncio.TaskGroup | None = None
        self.parts: SessionParts = build_parts(services, start, model, self.spawn)

    @property
    def stats(self) -> dict[str, int]:
        """Counts for the session's end-of-life log line (no content, only numbers)."""
        p = self.parts
        return {**p.inbound.stats, "notices": p.notices.sent, "dropped_notices": p.outbox.dropped}

    @staticmethod
    def _validate(start: SessionStart) -> None:
        validate_format(start.audio_in, "in")
        validate_format(start.audio_out, "out")
        if start.video_encoding is not VideoEncoding.JPEG:
            raise ProtocolError(
                f"video encoding {start.video_encoding.value} is not supported by this "
                "server; supported: jpeg (one still per VideoFrame)"
            )

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Start a task this session owns: it ends, at the latest, with the session."""
        if self._tg is None:
            coro.close()
            raise RuntimeError("the session is not running")
        return self._tg.create_task(coro, name=f"{name}-{self.id}")

    async def run(self) -> None:
        """Serve the stream until the client half-closes or goes away."""
        p = self.parts
        started_at = self.services.clock()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self._writer(), name=f"writer-{self.id}")
                await p.outbox.put(
                    SessionReady(
                        session_id=self.id,
                        resume_token=self.resume_token,
                        audio_in=self.start.audio_in,
                        audio_out=self.start.audio_out,
                        model=self.services.runtime.name,
                        tick_hz=self.services.settings.server.tick_hz,
                        mode=self.start.mode,
                    )
                )
                if self.start.resume_token:
                    await p.notices.send(
                        Code.SESSION_RESUME_UNKNOWN,
                        "the resume token is not known to this server (it restarted, or "
                        "the session expired); a new session was started",
                    )
                ticker = tg.create_task(p.ticker.run(started_at), name=f"ticker-{self.id}")
                speaker = tg.create_task(p.speaker.run(), name=f"speaker-{self.id}")
                results = (
                    tg.create_task(self._results(), name=f"results-{self.id}")
                    if p.delegations is not None
                    else None
                )
                tg.create_task(self._reader(ticker, speaker, results), name=f"reader-{self.id}")
        except* Fatal as group:
            raise group.exceptions[0] from None
        finally:
            self._tg = None
            await self._cleanup()

    def go_away(self, reconnect_after_ms: int, reason: str) -> None:
        """The server is draining: tell the client to come back with its resume token."""
        self.parts.outbox.put_nowait(GoAway(reconnect_after_ms, reason))

    async def _cleanup(self) -> None:
        p = self.parts
        p.unsubscribe_tts()
        if p.delegations is not None:
            p.delegations.cancel_all("session end")
            await p.delegations.close()
        if p.listener is not None:
            await p.listener.close()
        # The session's KV cache is released in the model thread, after any step
        # still running there; a runtime already shut down has nothing left to free.
        try:
            await asyncio.get_running_loop().run_in_executor(
                self.services.runtime.executor, self.model.close
            )
        except RuntimeError:  # the executor was shut down (the server is stopping)
            self.model.close()

    async def _writer(self) -> None:
        while True:
            event = await self.parts.outbox.get()
            if event is END:
                return
            await self.link.send(cast(ServerEvent, event))

    async def _reader(
        self,
        ticker: asyncio.Task[None],
        speaker: asyncio.Task[None],
        results: asyncio.Task[None] | None,
    ) -> None:
        p = self.parts
        while (event := await self.link.recv()) is not None:
            await p.inbound.handle(event)
        # Half-close: stop watching, finish what is being said, then end the stream.
        p.ticker.stop()
        if results is not None:
            results.cancel()
        await ticker  # the tick in flight may still queue a reply: let it
        if p.delegations is not None:
            # Inside the group: their tasks (spawned into it) must end before it can.
            p.delegations.cancel_all("session end")
            await p.delegations.close()
        p.speaker.close()
        await speaker
        await p.outbox.put(END)

    async def _results(self) -> None:
        """Speak delegation results as soon as they arrive, not at the next tick."""
        p = self.parts
        assert p.delegations is not None
        while True:
            await p.delegations.wait_result()
            if p.engine.deliver_results() == 0:
                await asyncio.sleep(0)  # never spin if a result was taken elsewhere
