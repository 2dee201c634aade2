"""The bridge's gRPC link to a Murmur server: one ``Converse`` stream, resumed
across drops.

``BridgeLink.events()`` connects (each of the server's addresses in turn; with a
pairing, TLS pinned to the certificate learned then), sends ``SessionStart`` first,
then forwards whatever is put on ``outbox`` while yielding the server's events. On
UNAVAILABLE or a ``GoAway`` it reconnects with the resume token from the latest
``SessionReady`` (exponential backoff with jitter, or the server's own delay) and
carries on with the same outbox, so the caller never sees the seam except as a
second ``SessionReady``. Whatever was written to a call before it broke is gone
with it: nothing is sent twice. What waited in the outbox through the outage is
trimmed when the next connection is up, so the server does not get seconds of
history in a burst: audio captured longer ago than ``stale_audio_s`` is dropped,
of the video frames only the newest is kept, everything else (text, controls,
stills asked for, playback reports) goes as queued; a status line counts the drops.

grpc.aio rule kept here: on the call only ``write``/``read``/``done_writing``
are used, never ``async for`` (mixing the two raises).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from dataclasses import dataclass

import grpc
from murmur.v1 import companion_pb2 as pb
from murmur.v1 import companion_pb2_grpc as pb_grpc

from mobile_bridge.clock import Clock, SystemClock
from mobile_bridge.connection import (
    Connection,
    LinkOptions,
    call_metadata,
    connect,
    hear_refusal,
    lost_transport,
)
from mobile_bridge.errors import LinkError, explain_status

__all__ = ["RESUME_UNKNOWN", "BridgeLink", "fresh_after_outage"]

log = logging.getLogger(__name__)

RESUME_UNKNOWN = "session.resume_unknown"  # the server's Notice: a fresh session instead

_CLOSE = object()  # outbox sentinel: half-close the stream


def fresh_after_outage(
    queued: Iterable[object], *, now_ms: int, max_audio_age_ms: int
) -> tuple[list[object], int, int, int]:
    """What of an outbox that waited through an outage is still worth sending, in order;
    and how many audio chunks, video frames and location fixes were left out.

    Audio captured more than ``max_audio_age_ms`` before ``now_ms`` (the bridge's unix
    clock, which sources stamp captures with) is history the server's listener would
    only have to wade through; audio without a capture time has no known age and
    stays. Video is a latest-only slot: of the plain frames only the newest stays; so
    is location (each fix carries the route step in force), only the newest fix stays.
    A still the server asked for (``high_res``) stays, as does every other event.
    """
    items = list(queued)

    def newest(test: Callable[[object], bool]) -> int | None:
        return next((i for i in reversed(range(len(items))) if test(items[i])), None)

    newest_frame, newest_fix = newest(_plain_frame), newest(_location)
    kept: list[object] = []
    audio = frames = fixes = 0
    for i, item in enumerate(items):
        if _plain_frame(item) and i != newest_frame:
            frames += 1
        elif _location(item) and i != newest_fix:
            fixes += 1
        elif _stale_audio(item, now_ms - max_audio_age_ms):
            audio += 1
        else:
            kept.append(item)
    return kept, audio, frames, fixes


def _location(item: object) -> bool:
    return isinstance(item, pb.ClientEvent) and item.HasField("location")


def _plain_frame(item: object) -> bool:
    return (
        isinstance(item, pb.ClientEvent)
        and item.HasField("video_frame")
        and not item.video_frame.high_res
    )


def _stale_audio(item: object, oldest_ms: int) -> bool:
    if not isinstance(item, pb.ClientEvent) or not item.HasField("audio_chunk"):
        return False
    captured = item.audio_chunk.capture_time_ms
    return 0 < captured < oldest_ms


async def _read(rpc: grpc.aio.StreamStreamCall) -> object:
    """``rpc.read()``, with the call's own status in place of the core's vaguer one."""
    try:
        return await rpc.read()
    except grpc.aio.AioRpcError as e:
        if not lost_transport(e.code(), e.details() or ""):
            raise
        code, details = await rpc.code(), await rpc.details()
        if code in (e.code(), grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
            raise
        raise grpc.aio.AioRpcError(
            code, await rpc.initial_metadata(), await rpc.trailing_metadata(), details
        ) from e


class ControlSlots:
    """The wearer's controls waiting for the stream, apart from the outbox: never
    dropped, and bounded by keeping only the latest of each kind (one mode, one pause
    state, one volume...), in the order last given. Through an outage the server then
    hears, at the reconnect, exactly the state the wearer left it in."""

    def __init__(self) -> None:
        self._slots: dict[str, pb.Control] = {}
        self._waiting = asyncio.Event()

    def put(self, control: pb.Control) -> None:
        kind = control.WhichOneof("action") or ""
        self._slots.pop(kind, None)  # a newer one of its kind goes last
        self._slots[kind] = control
        self._waiting.set()

    def restore(self, control: pb.Control) -> None:
        """One whose write failed, unless a newer one of its kind came meanwhile."""
        if (control.WhichOneof("action") or "") not in self._slots:
            self.put(control)

    def take(self) -> pb.Control | None:
        if not self._slots:
            return None
        control = self._slots.pop(next(iter(self._slots)))
        if not self._slots:
            self._waiting.clear()
        return control

    async def wait(self) -> None:
        await self._waiting.wait()

    def __len__(self) -> int:
        return len(self._slots)


@dataclass
class _Call:
    """What one call ended with, for the reconnect decision."""

    got_ready: bool = False
    go_away_ms: int | None = None


class BridgeLink:
    """One glasses session over ``Companion.Converse``, reconnecting with resume."""

    def __init__(
        self,
        options: LinkOptions,
        start: pb.SessionStart,
        *,
        on_status: Callable[[str], None] | None = None,
        clock: Clock | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.options = options
        self.start = start
        self.outbox: asyncio.Queue[object] = asyncio.Queue(options.outbox_size)
        self.controls = ControlSlots()  # sent before the outbox's next item
        self.ready: pb.SessionReady | None = None
        self.resume_token = start.resume_token
        self.reconnects = 0
        self.sent = 0
        self.dropped_audio = 0  # stale audio chunks left out after reconnects
        self.dropped_frames = 0  # queued video frames superseded by a newer one
        self.delays: list[float] = []  # each wait before a reconnect, in order
        self._on_status = on_status or (lambda msg: log.warning("%s", msg))
        self._clock = clock or SystemClock()
        self._rand = rand
        self._closing = False
        self._call: grpc.aio.StreamStreamCall | None = None
        self._targets = options.addresses
        self._call_target = options.target

    async def send(self, event: pb.ClientEvent) -> None:
        """Queue an event for the stream (waits when the outbox is full: backpressure)."""
        await self.outbox.put(event)

    def send_control(self, control: pb.Control) -> None:
        """Queue a wearer's control; never dropped, however full the outbox is."""
        self.controls.put(control)

    async def close(self) -> None:
        """Half-close after everything already queued; the server then ends the session."""
        self._closing = True
        await self.outbox.put(_CLOSE)

    def cancel(self) -> None:
        """Drop the stream now."""
        if self._call is not None:
            self._call.cancel()

    async def events(self) -> AsyncIterator[pb.ServerEvent]:
        """The server's events until the session ends; raises ``LinkError`` when it
        ends badly and cannot be resumed."""
        failures = 0  # tries in a row without a SessionReady
        while True:
            call = _Call()
            try:
                conn = await connect(self._reorder())
                try:
                    async with contextlib.aclosing(self._converse(conn, call)) as stream:
                        async for msg in stream:
                            yield msg
                finally:
                    await conn.channel.close()
            except LinkError as e:  # could not connect at all
                if not e.retryable or self.ready is None or self._closing:
                    raise  # the first connect fails fast: the person is watching
                reason = str(e)
            except grpc.aio.AioRpcError as e:
                code, details = e.code(), e.details() or ""
                if self._closing and code is grpc.StatusCode.CANCELLED:
                    return
                resumable = lost_transport(code, details) or call.go_away_ms is not None
                never_ready = self.ready is None and not call.got_ready
                # A call the server ends before our first write lands (a refused token)
                # sometimes reaches us as the core's own INTERNAL, its real status lost:
                # one more try then usually hears it.
                lost_status = code is grpc.StatusCode.INTERNAL and failures < 2
                if not resumable or self._closing or (never_ready and not lost_status):
                    target = self._call_target
                    raise LinkError(
                        explain_status(code, details, target, tls=self.options.secure),
                        code,
                        details,
                    ) from e
                reason = f"lost the stream to {self._call_target} ({code.name}: {details})"
            else:
                if call.go_away_ms is None or self._closing:
                    return  # the server ended the session cleanly
                reason = ""
            failures = 0 if call.got_ready else failures + 1
            if failures > self.options.max_reconnects:
                raise LinkError(
                    f"{reason}; gave up after {self.options.max_reconnects} reconnects",
                    grpc.StatusCode.UNAVAILABLE,
                )
            if reason:
                self._on_status(reason)
            delay = (
                call.go_away_ms / 1000
                if call.go_away_ms is not None
                # after a healthy stretch the first wait is the shortest
                else self.options.backoff.delay(failures + 1, self._rand())
            )
            self.reconnects += 1
            self.delays.append(delay)
            self._on_status(
                f"reconnecting in {delay:.1f} s (try {self.reconnects}, "
                f"{'resuming' if self.resume_token else 'new session'})"
            )
            await self._clock.sleep(delay)

    def _reorder(self) -> LinkOptions:
        """The options with the address that worked last tried first."""
        first, *rest = self._targets
        return dataclasses.replace(self.options, target=first, alternates=tuple(rest))

    async def _converse(
        self, conn: Connection, call: _Call
    ) -> AsyncGenerator[pb.ServerEvent, None]:
        """One ``Converse`` call: SessionStart, then the pump, yielding what arrives."""
        self._call_target = conn.target
        self._targets = (conn.target, *(t for t in self._targets if t != conn.target))
        stub = pb_grpc.CompanionStub(conn.channel)
        rpc = self._call = stub.Converse(metadata=call_metadata(self.options))
        pump: asyncio.Task[None] | None = None
        try:
            start = pb.SessionStart()
            start.CopyFrom(self.start)
            start.resume_token = self.resume_token
            try:
                await rpc.write(pb.ClientEvent(session_start=start))
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as e:
                # The server ended the call first (a refused token, say); the write
                # reports only "Internal error from Core", the read below the real
                # status, unless the failed write overwrote it: then ask again.
                if isinstance(e, grpc.aio.AioRpcError) and e.code() is grpc.StatusCode.INTERNAL:
                    wait_s = min(1.0, self.options.connect_timeout_s)
                    refused = await hear_refusal(conn.channel, call_metadata(self.options), wait_s)
                    if refused is not None:
                        raise refused from e
            else:
                self.sent += 1
                if self.reconnects:
                    self._trim_outbox()
                # Only now start the pump: one write at a time per call, and
                # SessionStart must be the first.
                pump = asyncio.create_task(self._pump(rpc))
            while (msg := await _read(rpc)) is not grpc.aio.EOF:
                assert isinstance(msg, pb.ServerEvent)
                self._note(msg, call)
                yield msg
        finally:
            if pump is not None:
                pump.cancel()
                await asyncio.wait([pump])  # (never raises, so our own cancel stays ours)
            rpc.cancel()
            self._call = None

    def _trim_outbox(self) -> None:
        """Leave out what went stale in the outbox while no call took it (see
        ``fresh_after_outage``). Nothing awaits in here, so no one puts in between."""
        queued: list[object] = []
        while not self.outbox.empty():
            queued.append(self.outbox.get_nowait())
        kept, audio, frames, fixes = fresh_after_outage(
            queued,
            now_ms=int(self._clock.time() * 1000),
            max_audio_age_ms=int(self.options.stale_audio_s * 1000),
        )
        for item in kept:  # (no more than came out: it fits)
            self.outbox.put_nowait(item)
        if audio or frames or fixes:
            self.dropped_audio += audio
            self.dropped_frames += frames
            going = sum(isinstance(item, pb.ClientEvent) for item in kept)
            located = f", {fixes} superseded location fix(es)" if fixes else ""
            self._on_status(
                f"back after the drop: left out {audio} queued audio chunk(s) captured "
                f"over {self.options.stale_audio_s:g} s ago and {frames} superseded video "
                f"frame(s){located}; {going} queued event(s) go on"
            )

    def _note(self, msg: pb.ServerEvent, call: _Call) -> None:
        which = msg.WhichOneof("event")
        if which == "session_ready":
            if self.ready is not None and msg.session_ready.session_id != self.ready.session_id:
                self._on_status(
                    f"the server started a new session ({msg.session_ready.session_id})"
                )
            self.ready = msg.session_ready
            # Always the newest: after a restart the old token means nothing.
            self.resume_token = msg.session_ready.resume_token
            call.got_ready = True
        elif which == "go_away":
            call.go_away_ms = msg.go_away.reconnect_after_ms
            self._on_status(
                f"server is draining ({msg.go_away.reason or 'no reason given'}); "
                f"will reconnect after {call.go_away_ms} ms"
            )
        elif which == "notice" and msg.notice.code == RESUME_UNKNOWN:
            self._on_status(
                "the server did not know this session (it restarted, or the session "
                "expired): going on in a new one; what it remembered is gone"
            )

    async def _pump(self, call: grpc.aio.StreamStreamCall) -> None:
        """The only writer to ``call`` after SessionStart: controls, then outbox → stream."""
        while True:
            control = self.controls.take()
            item = pb.ClientEvent(control=control) if control is not None else await self._next()
            if item is None:
                continue  # a control came first
            if item is _CLOSE:
                with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    await call.done_writing()
                return
            assert isinstance(item, pb.ClientEvent)
            try:
                await call.write(item)
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                # The call is over; the reader sees why and decides whether to resume.
                # This one event is lost, as it would be over a real radio link, and
                # is not sent again on the next call; a control is (the wearer's state).
                if control is not None:
                    self.controls.restore(control)
                return
            self.sent += 1

    async def _next(self) -> object | None:
        """The outbox's next item, or None as soon as a control is waiting."""
        if not self.outbox.empty():
            return self.outbox.get_nowait()
        got = asyncio.ensure_future(self.outbox.get())
        control = asyncio.ensure_future(self.controls.wait())
        try:
            await asyncio.wait([got, control], return_when=asyncio.FIRST_COMPLETED)
        finally:
            control.cancel()
            if not got.done():
                got.cancel()  # Queue.get leaves its item in the queue when cancelled
            await asyncio.wait([got])
        return None if got.cancelled() else got.result()
