"""Bad input never costs a session it should not, and every call ends with a status
(issue 14): raw bytes that are not protobuf, a failure while the first write is in
flight, streams that never start, silent sessions, huge texts and traces, the status
table, vanished clients and Notices without internals. Real gRPC on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import grpc
import pytest
from murmur.v1 import companion_pb2 as pb

from server import errors
from server.config import Settings
from server.engine.trace_bounds import TRACE_TEXT_BYTES, trace_text
from server.errors import (
    CapacityError,
    Fatal,
    IdleTimeout,
    ProtocolError,
    StreamClosed,
    TimedOutError,
    UnauthenticatedError,
)
from server.events import Notice, TickTrace
from server.session.notices import public
from server.transport import link as link_module
from server.transport.link import GrpcLink, clip_utf8
from server.transport.status import STATUS_FOR, ending_for
from tests.harness import Client, running_server, scripted, session_start

FAST = Settings().with_overrides("server", tick_hz=5.0, frame_wait_ms=20)
START = session_start().SerializeToString()
NOT_PROTOBUF = {
    "bad-utf8": b"\x22\x04\x0a\x02\xff\xfe",  # text_input.text = b"\xff\xfe"
    "field-0": b"\x00\x00",
    "length-past-end": b"\x0a\x10abc",
}


class RawCall:
    """A Converse call that writes bytes as they are (a broken or hostile client)."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.call: Any = self.channel.stream_stream(
            "/murmur.v1.Companion/Converse",
            request_serializer=lambda b: b,
            response_deserializer=pb.ServerEvent.FromString,
        )()
        self.events: list[pb.ServerEvent] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while (msg := await self.call.read()) is not grpc.aio.EOF:
                self.events.append(msg)
        except grpc.aio.AioRpcError:
            pass

    def notices(self) -> list[str]:
        return [e.notice.code for e in self.events if e.HasField("notice")]

    async def wait_for(self, pred: Any, within_s: float = 10.0) -> None:
        await _until(lambda: pred() or self._reader.done(), within_s)
        assert pred(), f"stream ended early: {self.events}"

    async def status(self, within_s: float = 10.0) -> tuple[grpc.StatusCode, str]:
        async with asyncio.timeout(within_s):
            await self._reader
            return await self.call.code(), await self.call.details() or ""

    async def close(self) -> None:
        self.call.cancel()
        self._reader.cancel()
        await self.channel.close()


async def _until(pred: Any, within_s: float = 5.0) -> None:
    for _ in range(int(within_s / 0.02)):
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {within_s:g} s")


# --------------------------------------------------------------- (a) not protobuf


@pytest.mark.parametrize("raw", NOT_PROTOBUF.values(), ids=NOT_PROTOBUF.keys())
async def test_not_protobuf_as_the_first_message_is_invalid_argument(tts, raw, caplog):
    caplog.set_level(logging.INFO)
    async with running_server(scripted(), tts, FAST) as srv:
        c = RawCall(srv.address)
        try:
            await c.call.write(raw)
            code, details = await c.status()
        finally:
            await c.close()
    assert code == grpc.StatusCode.INVALID_ARGUMENT  # was INTERNAL
    assert "not a valid murmur.v1.ClientEvent" in details
    # A client's bad bytes are not a server crash (was: "session failed unexpectedly").
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_not_protobuf_mid_session_is_dropped_with_a_notice_and_the_session_goes_on(tts):
    async with running_server(scripted(), tts, FAST) as srv:
        c = RawCall(srv.address)
        try:
            await c.call.write(session_start(want_trace=True).SerializeToString())
            await c.wait_for(lambda: c.events and c.events[0].HasField("session_ready"))
            for raw in NOT_PROTOBUF.values():
                await c.call.write(raw)
            await c.wait_for(lambda: c.notices().count("protocol.bad_message") == 3)
            # The same session still hears the wearer.
            text = pb.ClientEvent(text_input=pb.TextInput(text="still there?"))
            await c.call.write(text.SerializeToString())
            await c.wait_for(
                lambda: any(
                    e.tick.user_query == "still there?" for e in c.events if e.HasField("tick")
                )
            )
            await c.call.done_writing()
            code, _ = await c.status()
        finally:
            await c.close()
    assert code == grpc.StatusCode.OK  # was OK too, but with the session detached, deaf


@pytest.mark.parametrize("extra", [100, 256 * 1024], ids=["just-over", "far-over"])
async def test_a_message_over_the_limit_is_resource_exhausted_even_mid_stream(tts, extra):
    # A client streaming frames: one over the limit, more after it. The status must be
    # RESOURCE_EXHAUSTED each time, never the client's failed write (INTERNAL).
    limit = 64 * 1024
    settings = FAST.with_overrides("server", max_message_bytes=limit, max_frame_bytes=limit)
    frame = pb.ClientEvent(video_frame=pb.VideoFrame(seq=1, data=b"\xff" * 1000))
    big = pb.ClientEvent(video_frame=pb.VideoFrame(seq=2, data=b"\xff" * (limit + extra)))
    codes = []
    async with running_server(scripted(), tts, settings) as srv:
        for first in (True, False, False):
            async with Client(srv.address) as c:
                if not first:
                    await c.start()
                with contextlib.suppress(grpc.aio.AioRpcError):
                    for message in (big, *[frame] * 10) if first else (frame, big, *[frame] * 10):
                        await c.send(message)
                async with asyncio.timeout(10):
                    await c._reader
                codes.append(await c.call.code())
    assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3


# --------------------------------------------------- (b) failure during the first write


@pytest.mark.parametrize("cancel_write", [False, True], ids=["write-in-flight", "write-cancelled"])
async def test_a_failure_while_the_first_write_is_in_flight_still_ends_with_a_status(
    tts, monkeypatch, cancel_write
):
    sent = GrpcLink.send

    async def fail_mid_write(self: GrpcLink, event: Any) -> None:
        write = asyncio.ensure_future(sent(self, event))
        await asyncio.sleep(0)  # the write is in gRPC's hands, not done
        if cancel_write:
            write.cancel()
        raise UnauthenticatedError("this device was revoked")

    monkeypatch.setattr(link_module.GrpcLink, "send", fail_mid_write)
    codes = []
    async with running_server(scripted(), tts, FAST) as srv:
        for _ in range(5):
            c = RawCall(srv.address)
            try:
                await c.call.write(START)
                codes.append((await c.status(within_s=5.0))[0])  # was: no status, a hang
            finally:
                await c.close()
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 5


# ---------------------------------------------------------------------- (c) capacity


async def test_streams_that_never_start_hold_no_session_slot(tts):
    settings = FAST.with_overrides("server", max_sessions=2, first_message_timeout_s=5.0)
    async with running_server(scripted(), tts, settings) as srv:
        silent = [RawCall(srv.address) for _ in range(4)]
        try:
            await _until(lambda: srv.server.servicer._active == 4, 10)  # all reached it
            async with Client(srv.address) as c:
                ready = await c.start()  # was: RESOURCE_EXHAUSTED, "too many calls are opening"
                assert ready.session_id
                assert await c.finish() == grpc.StatusCode.OK
        finally:
            for s in silent:
                await s.close()


async def test_no_session_start_in_time_is_deadline_exceeded(tts):
    settings = FAST.with_overrides("server", first_message_timeout_s=0.3)
    async with running_server(scripted(), tts, settings) as srv:
        c = RawCall(srv.address)
        try:
            code, details = await c.status()
        finally:
            await c.close()
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED  # was INVALID_ARGUMENT after 30 s
    assert "first_message_timeout_s" in details


async def test_a_silent_session_is_closed_with_a_notice_then_deadline_exceeded(tts):
    settings = FAST.with_overrides("server", idle_timeout_s=0.5)
    async with running_server(scripted(), tts, settings) as srv, Client(srv.address) as c:
        await c.start()
        notice = await c.wait_for("notice", pred=lambda n: n.code == "session.idle")
        assert "idle_timeout_s" in notice.message
        await c._reader
        assert await c.call.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # was: open forever
        await _until(lambda: not srv.sessions)  # ended, not parked for a resume


async def test_a_session_with_traffic_is_not_idle(tts):
    settings = FAST.with_overrides("server", idle_timeout_s=1.0)
    async with running_server(scripted(), tts, settings) as srv, Client(srv.address) as c:
        await c.start()
        for seq in range(1, 16):
            await c.frame(seq)
            await asyncio.sleep(0.1)
        assert await c.finish() == grpc.StatusCode.OK
        assert "session.idle" not in [n.code for n in c.of("notice")]


# ------------------------------------------------------------------- (d) text bounds


async def test_long_text_is_cut_with_a_notice_and_the_trace_stays_bounded(tts):
    async with running_server(scripted(), tts, FAST) as srv, Client(srv.address) as c:
        await c.start(want_trace=True)
        await c.send(pb.ClientEvent(text_input=pb.TextInput(text="é" * 5000)))  # 10,000 bytes
        notice = await c.wait_for("notice", pred=lambda n: n.code == "protocol.text_too_long")
        assert "max_text_bytes" in notice.message
        await c.frame(1)
        tick = await c.wait_for("tick", pred=lambda t: t.user_query)
        assert tick.user_query == "é" * 2048  # 4096 bytes, not a character split
        assert await c.finish() == grpc.StatusCode.OK


async def test_two_huge_texts_in_one_tick_do_not_end_the_session(tts):
    async with running_server(scripted(), tts, FAST) as srv, Client(srv.address) as c:
        await c.start(want_trace=True)
        huge = pb.ClientEvent(text_input=pb.TextInput(text="y" * 2_500_000))
        await c.send(huge)
        await c.send(huge)
        await c.frame(1)
        await c.wait_for("tick", pred=lambda t: t.user_query, within_s=20)
        await c.frame(2)
        # was: RESOURCE_EXHAUSTED "Sent message larger than max" on the next trace
        assert await c.finish() == grpc.StatusCode.OK
        assert max(t.ByteSize() for t in c.of("tick")) < 64 * 1024


def test_trace_text_is_bounded_in_bytes():
    assert trace_text("short") == "short"
    cut = trace_text("ü" * 10_000)
    assert len(cut.encode()) <= TRACE_TEXT_BYTES and cut.endswith("…")
    assert clip_utf8("aé", 2) == "a"  # never half a character


async def test_the_link_never_writes_a_message_over_the_send_limit():
    written: list[Any] = []

    class Context:
        async def write(self, message: Any) -> None:
            written.append(message)

    link = GrpcLink(Context(), Settings())  # type: ignore[arg-type]
    await link.send(TickTrace(tick_s=1.0, action="silence", text="x" * (5 * 1024 * 1024)))
    await link.send(TickTrace(tick_s=1.0, action="silence", text="fine"))
    assert [m.tick.text for m in written] == ["fine"]


# -------------------------------------------------- (e) status table, vanish, notices


def test_one_status_table_for_every_fatal_error():
    cases = {
        ProtocolError("x"): grpc.StatusCode.INVALID_ARGUMENT,
        CapacityError("x"): grpc.StatusCode.RESOURCE_EXHAUSTED,
        TimedOutError("x"): grpc.StatusCode.DEADLINE_EXCEEDED,
        IdleTimeout("x"): grpc.StatusCode.DEADLINE_EXCEEDED,
        UnauthenticatedError("x"): grpc.StatusCode.UNAUTHENTICATED,
    }
    for error, code in cases.items():
        ending = ending_for(error)
        assert (ending.code, ending.level) == (code, logging.INFO), error
    # Every Fatal class has its status in the table (itself or a base), none is INTERNAL.
    fatal = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Fatal)]
    assert all(any(b in STATUS_FOR for b in c.__mro__) for c in fatal if c is not Fatal)


def test_a_vanished_client_is_not_a_crash_and_a_bug_is():
    for gone in (StreamClosed("the call ended"), grpc.aio.UsageError("RPC already finished.")):
        ending = ending_for(gone)
        assert ending.code is None and ending.level == logging.INFO and not ending.crash
    bug = ending_for(KeyError("oops"))
    assert bug.code == grpc.StatusCode.INTERNAL and bug.level == logging.ERROR and bug.crash
    assert "0x" not in bug.details


async def test_clients_that_vanish_mid_session_log_no_error(tts, caplog):
    caplog.set_level(logging.INFO)
    async with running_server(scripted((0.2, "</response> Hello there.")), tts, FAST) as srv:
        for _ in range(3):
            async with Client(srv.address) as c:
                await c.start(want_trace=True)
                await c.frame(1)
                await c.wait_for("tick")
                c.call.cancel()  # the phone is gone, mid-session
        await asyncio.sleep(0.5)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def test_notices_carry_no_object_reprs_or_tracebacks():
    raw = Notice(
        "tts.failed",
        'edge failed: Failed "execute_batch": (<grpc._cython.cygrpc.SendMessageOperation '
        "object at 0x7f3d1a7679b0>,) in <function speak at 0x7f00deadbeef>\n"
        "Traceback (most recent call last):\n  File ...",
    )
    clean = public(raw)
    assert "0x" not in clean.message and "Traceback" not in clean.message
    assert "SendMessageOperation" in clean.message and clean.code == raw.code
    assert public(clean) is clean
    assert len(public(Notice("x", "a" * 10_000)).message) <= 400


async def test_notices_leave_the_wire_without_internals():
    written: list[Any] = []

    class Context:
        async def write(self, message: Any) -> None:
            written.append(message)

    link = GrpcLink(Context(), Settings())  # type: ignore[arg-type]
    await link.send(Notice("model.error", "step failed: <Thing object at 0x7fabcdef0123>"))
    assert written[0].notice.message == "step failed: Thing"
