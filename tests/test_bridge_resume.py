"""The link survives drops: a real ``grpc.aio`` Companion on loopback, sometimes behind
a TCP proxy that can cut the network or point at a restarted server.

Backoff sleeps go through a ``RecordingClock``, so the waits are asserted exactly
(and mostly take no real time); jitter comes from a scripted ``rand``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import grpc
import pytest
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.client import SessionOptions
from mobile_bridge.connection import Backoff, LinkOptions
from mobile_bridge.controls import Command
from mobile_bridge.errors import LinkError
from mobile_bridge.link import BridgeLink, fresh_after_outage
from mobile_bridge.live import LiveOptions, SessionWiring, run_live
from mobile_bridge.tls import ServerPin
from tests.fakes import (
    FakeCompanion,
    PressableSource,
    RecordingClock,
    TcpProxy,
    companion_server,
    self_signed_cert,
)

START = pb.SessionStart(mode=pb.MODE_GENERAL, language="en", client_name="test")


def _frame(seq: int) -> pb.ClientEvent:
    return pb.ClientEvent(
        video_frame=pb.VideoFrame(seq=seq, encoding=pb.VIDEO_ENCODING_JPEG, data=b"\xff\xd8")
    )


def _audio(seq: int, capture_time_ms: int) -> pb.ClientEvent:
    return pb.ClientEvent(
        audio_chunk=pb.AudioChunk(seq=seq, capture_time_ms=capture_time_ms, data=b"\xfc")
    )


def _still(seq: int) -> pb.ClientEvent:
    return pb.ClientEvent(video_frame=pb.VideoFrame(seq=seq, high_res=True, data=b"\xff\xd8"))


def _text(text: str) -> pb.ClientEvent:
    return pb.ClientEvent(text_input=pb.TextInput(text=text))


def _fix(lat: float, step: str) -> pb.ClientEvent:
    return pb.ClientEvent(location=pb.Location(lat=lat, lon=13.4, route_step=step))


def _rand(values: Iterable[float]) -> Callable[[], float]:
    it = iter(values)
    return lambda: next(it)


async def _until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {timeout_s:g} s")


class Run:
    """A link's events collected on a task, and its status lines."""

    def __init__(self, options: LinkOptions, clock: RecordingClock, **kw: object) -> None:
        self.status: list[str] = []
        self.events: list[pb.ServerEvent] = []
        self.link = BridgeLink(options, START, on_status=self.status.append, clock=clock, **kw)  # type: ignore[arg-type]
        self.task = asyncio.create_task(self._receive())

    async def _receive(self) -> None:
        async for ev in self.link.events():
            self.events.append(ev)

    def readies(self) -> list[tuple[str, str]]:
        return [
            (e.session_ready.session_id, e.session_ready.resume_token)
            for e in self.events
            if e.HasField("session_ready")
        ]

    async def send_frames(self, seqs: Iterable[int], every_s: float = 0.01) -> None:
        for seq in seqs:
            await self.link.send(_frame(seq))
            await asyncio.sleep(every_s)

    async def send_events(self, events: Iterable[pb.ClientEvent]) -> None:
        for event in events:
            await self.link.send(event)

    async def finish(self) -> None:
        await self.link.close()
        await asyncio.wait_for(self.task, 10)


def _opts(target: str, **kw: object) -> LinkOptions:
    opts = LinkOptions(target=target, connect_timeout_s=2.0)
    for k, v in kw.items():
        setattr(opts, k, v)
    return opts


def _assert_never_resent(fake: FakeCompanion) -> list[int]:
    seqs = [seq for _, seq in fake.frames()]
    assert seqs == sorted(set(seqs)), f"a frame arrived twice or out of order: {seqs}"
    return seqs


async def test_a_drop_resumes_with_the_token_and_never_resends_what_was_sent():
    fake = FakeCompanion(drop_after_frames=3)
    clock = RecordingClock()
    async with companion_server(fake) as target:
        run = Run(
            _opts(target, backoff=Backoff(initial_s=0.2, jitter=0.5)), clock, rand=lambda: 0.5
        )
        await run.send_frames(range(10))
        await _until(lambda: fake.frames()[-1:] == [(2, 9)])
        await run.finish()

    assert [c[0].session_start.resume_token for c in fake.calls] == ["", "resume-1"]
    assert run.readies() == [("s1", "resume-1"), ("s1", "resume-1")]  # the same session
    seqs = _assert_never_resent(fake)
    assert [s for n, s in fake.frames() if n == 1] == [0, 1, 2]
    # At most what was in flight at the cut is lost; what queued up meanwhile went on
    # as its newest frame.
    assert seqs[-1] == 9 and len(seqs) + run.link.dropped_frames >= 8
    assert clock.sleeps == [pytest.approx(0.15)]  # 0.2 less half of a 0.5 jitter
    assert run.link.reconnects == 1
    assert any("lost the stream" in s and "UNAVAILABLE" in s for s in run.status)


async def test_failed_tries_back_off_exponentially_with_jitter_up_to_the_cap():
    fake = FakeCompanion(drop_after_frames=1, refuse_calls=frozenset({2, 3, 4}))
    clock = RecordingClock()
    backoff = Backoff(initial_s=0.1, factor=2.0, max_s=0.3, jitter=0.5)
    async with companion_server(fake) as target:
        run = Run(_opts(target, backoff=backoff), clock, rand=_rand([0.0, 0.5, 0.9, 0.2]))
        await run.send_frames([0])
        await _until(lambda: len(fake.calls) == 5 and run.readies()[-1:] == [("s1", "resume-1")])
        await run.send_frames([1])
        await _until(lambda: len(fake.frames()) == 2)
        await run.finish()

    # Every try carries the same resume token; the refused ones do not change it.
    assert [c[0].session_start.resume_token for c in fake.calls] == [""] + ["resume-1"] * 4
    assert clock.sleeps == [
        pytest.approx(0.1),  # after a healthy call, the shortest wait
        pytest.approx(0.2 * 0.75),
        pytest.approx(0.3 * 0.55),  # capped at 0.3 from here
        pytest.approx(0.3 * 0.9),
    ]
    assert run.link.delays == clock.sleeps and run.link.reconnects == 4


async def test_gives_up_after_max_reconnects_in_a_row_and_says_so():
    fake = FakeCompanion(drop_after_frames=1, refuse_calls=frozenset(range(2, 100)))
    clock = RecordingClock()
    async with companion_server(fake) as target:
        run = Run(_opts(target, max_reconnects=2, backoff=Backoff(0.1, jitter=0.0)), clock)
        await run.send_frames([0])
        with pytest.raises(LinkError, match="gave up after 2 reconnects") as info:
            await asyncio.wait_for(run.task, 10)
    assert info.value.code is grpc.StatusCode.UNAVAILABLE
    assert len(fake.calls) == 4 and clock.sleeps == pytest.approx([0.1, 0.2, 0.4])


async def test_go_away_waits_the_servers_delay_then_resumes():
    fake = FakeCompanion(go_away_first_call=True)
    clock = RecordingClock()
    async with companion_server(fake) as target:
        run = Run(_opts(target), clock, rand=lambda: 0.9)
        await _until(lambda: len(fake.calls) == 2)
        await run.send_frames([0])
        await _until(lambda: len(fake.frames()) == 1)
        await run.finish()
    assert clock.sleeps == [0.05]  # the server's 50 ms, no jitter on top
    assert [c[0].session_start.resume_token for c in fake.calls] == ["", "resume-1"]
    assert run.readies() == [("s1", "resume-1"), ("s1", "resume-1")]


async def test_after_a_server_restart_the_bridge_goes_on_in_the_new_session():
    old, new = FakeCompanion(), FakeCompanion(name="b-")
    clock = RecordingClock(scale=1.0)
    async with companion_server(new) as new_target:
        old_server = companion_server(old)
        async with TcpProxy(await old_server.__aenter__()) as proxy:
            run = Run(_opts(proxy.address, backoff=Backoff(0.05, max_s=0.2)), clock)
            await run.send_frames([0, 1])
            await _until(lambda: len(old.frames()) == 2)
            proxy.upstream = new_target  # where the restarted server listens
            await old_server.__aexit__(None, None, None)  # the old one is gone mid-stream
            await _until(lambda: len(run.readies()) == 2)
            await run.send_frames([2, 3])
            await _until(lambda: len(new.frames()) == 2)
            await run.finish()

    assert new.calls[0][0].session_start.resume_token == "resume-1"
    assert run.readies() == [("s1", "resume-1"), ("b-s1", "b-resume-1")]
    assert run.link.resume_token == "b-resume-1"
    notices = [e.notice.code for e in run.events if e.HasField("notice")]
    assert notices == ["session.resume_unknown"]
    assert any("did not know this session" in s for s in run.status)
    assert [s for _, s in new.frames()] == [2, 3]  # nothing from before the restart again


def _controls(fake: FakeCompanion, call: int) -> list[str]:
    """The controls a call carried, as ``set_mode=2`` / ``pause_watching=True``."""
    got = []
    for e in fake.calls[call] if len(fake.calls) > call else ():
        if e.HasField("control"):
            which = e.control.WhichOneof("action") or ""
            value = getattr(e.control, which)
            got.append(f"{which}={round(value, 3) if isinstance(value, float) else value}")
    return got


async def test_a_new_server_session_is_told_the_wearers_mode_volume_and_pause_again():
    old, new = FakeCompanion(), FakeCompanion(name="b-")
    source = PressableSource()
    lines: list[str] = []

    async def open_source() -> PressableSource:
        return source

    async with companion_server(new) as new_target:
        old_server = companion_server(old)
        async with TcpProxy(await old_server.__aenter__()) as proxy:
            opts = LiveOptions(
                wiring=SessionWiring(
                    link=_opts(proxy.address, backoff=Backoff(0.05, max_s=0.2)),
                    session=SessionOptions(linger_s=0.1),
                ),
                keyboard=False,
                status_every_s=0,
                handle_sigint=False,
                echo=lines.append,
            )
            live = asyncio.create_task(run_live(open_source, opts))  # type: ignore[arg-type]
            try:
                await _until(lambda: old.frames())
                for cmd in (Command("mode", "blind"), Command("volume", "+"), Command("pause")):
                    source.press(cmd)
                await _until(lambda: len(_controls(old, 0)) == 3)
                proxy.upstream = new_target  # the server restarts: a new session
                await old_server.__aexit__(None, None, None)
                await _until(lambda: len(_controls(new, 0)) == 3)
            finally:
                live.cancel()
                await asyncio.wait([live])
    blind = pb.MODE_BLIND
    assert _controls(old, 0) == [f"set_mode={blind}", "set_volume=0.8", "pause_watching=True"]
    assert _controls(new, 0) == _controls(old, 0), lines  # the new session agrees
    assert any("a new server session: sent again" in x for x in lines), lines


async def test_a_network_cut_over_pinned_tls_resumes_after_it_mends():
    cert = self_signed_cert()
    fake = FakeCompanion(token="secret")
    clock = RecordingClock(scale=1.0)
    async with companion_server(fake, tls=cert) as target, TcpProxy(target) as proxy:
        opts = _opts(
            proxy.address,
            token="secret",
            pin=ServerPin(cert.fingerprint, cert.cert_pem.decode()),
            backoff=Backoff(initial_s=0.05, factor=2.0, max_s=0.2, jitter=0.0),
            max_reconnects=100,
        )
        run = Run(opts, clock)
        await run.send_frames([0, 1])
        await _until(lambda: len(fake.frames()) == 2)
        await proxy.cut()
        await _until(lambda: any("lost the stream" in s for s in run.status))
        await run.send_frames(range(2, 6))  # queued while the network is down
        await asyncio.sleep(0.8)
        await proxy.mend()
        await _until(lambda: len(fake.frames()) == 3)
        await run.finish()

    assert run.readies() == [("s1", "resume-1"), ("s1", "resume-1")]
    assert {c[0].session_start.resume_token for c in fake.calls[1:]} == {"resume-1"}
    assert all(md["authorization"] == "Bearer secret" for md in fake.metadata)
    # Of the frames queued through the outage only the newest goes (video is latest-only).
    assert _assert_never_resent(fake) == [0, 1, 5] and run.link.dropped_frames == 3
    # Doubling from 0.05 up to the 0.2 cap while the proxy refused connections.
    assert clock.sleeps[:3] == pytest.approx([0.05, 0.1, 0.2])
    assert len(clock.sleeps) >= 4 and clock.sleeps[3:] == pytest.approx(
        [0.2] * len(clock.sleeps[3:])
    )
    assert not any("secret" in s for s in run.status)


async def test_after_an_outage_stale_audio_and_superseded_frames_are_left_out():
    fake = FakeCompanion()
    clock = RecordingClock(scale=1.0)
    async with companion_server(fake) as target, TcpProxy(target) as proxy:
        opts = _opts(
            proxy.address,
            backoff=Backoff(initial_s=0.05, max_s=0.1, jitter=0.0),
            max_reconnects=100,
            outbox_size=8,
            stale_audio_s=3.0,  # (room for a slow machine: the stale ones are 5 s and more)
        )
        run = Run(opts, clock)
        await run.send_frames([0])
        await _until(lambda: len(fake.frames()) == 1)
        await proxy.cut()
        await _until(lambda: any("lost the stream" in s for s in run.status))
        now_ms = int(clock.time() * 1000)
        waited = [
            _audio(0, now_ms - 10_000),
            _frame(1),
            _audio(1, now_ms - 5_000),
            _text("what is this?"),
            _frame(2),
            _audio(2, now_ms),
            _still(3),
            _frame(4),
            _audio(3, now_ms),  # the outbox is full: this one waits for room
        ]
        sender = asyncio.create_task(run.send_events(waited))
        await _until(lambda: run.link.outbox.full())
        assert not sender.done()
        await proxy.mend()
        await asyncio.wait_for(sender, 10)  # the trim made room
        await _until(lambda: len(fake.calls) == 2 and len(fake.calls[1]) == 6)
        await run.finish()

    assert run.readies() == [("s1", "resume-1"), ("s1", "resume-1")]
    arrived = fake.calls[1][1:]  # after SessionStart, in the order queued
    assert arrived == [waited[i] for i in (3, 5, 6, 7, 8)]
    assert (run.link.dropped_audio, run.link.dropped_frames) == (2, 2)
    (line,) = [s for s in run.status if s.startswith("back after the drop")]
    assert "2 queued audio chunk(s) captured over 3 s ago" in line
    assert "2 superseded video frame(s)" in line


def test_what_waited_through_an_outage_keeps_its_order_less_what_went_stale():
    close = object()  # (the link's half-close marker is kept in place too)
    queued = [
        _frame(1),
        _audio(0, 1_000),  # 9 s old
        _audio(1, 0),  # no capture time: no known age, kept
        _still(2),
        _frame(3),
        _audio(2, 9_500),  # 0.5 s old
        _fix(52.50, "Turn left"),
        close,
        _text("hi"),
        _fix(52.51, "Turn left"),  # (each fix carries the step in force)
    ]
    kept, audio, frames, fixes = fresh_after_outage(queued, now_ms=10_000, max_audio_age_ms=1_000)
    assert kept == [queued[i] for i in (2, 3, 4, 5, 7, 8, 9)]
    assert (audio, frames, fixes) == (1, 1, 1)
    assert fresh_after_outage([], now_ms=0, max_audio_age_ms=1_000) == ([], 0, 0, 0)


async def test_controls_given_through_an_outage_with_a_full_outbox_all_arrive():
    """A pause or stop is never dropped: through the outage the link keeps the latest
    control of each kind apart from the (full) outbox, and sends them first."""
    fake = FakeCompanion()
    clock = RecordingClock(scale=1.0)
    async with companion_server(fake) as target, TcpProxy(target) as proxy:
        run = Run(_opts(proxy.address, outbox_size=4, backoff=Backoff(0.05, max_s=0.2)), clock)
        await run.send_frames([0])
        await _until(lambda: fake.frames())
        await proxy.cut()
        await _until(lambda: any("reconnecting" in s for s in run.status))
        while not run.link.outbox.full():
            run.link.outbox.put_nowait(_frame(9))
        for control in (
            pb.Control(pause_watching=True),
            pb.Control(stop_speaking=pb.StopSpeakingNow()),
            pb.Control(set_mode=pb.MODE_BLIND),
            pb.Control(pause_watching=False),
            pb.Control(pause_watching=True),  # the latest pause state wins
        ):
            run.link.send_control(control)
        await proxy.mend()
        await _until(lambda: len(_controls(fake, len(fake.calls) - 1)) == 3)
        await run.finish()
    assert _controls(fake, len(fake.calls) - 1) == [
        "stop_speaking=",
        f"set_mode={pb.MODE_BLIND}",
        "pause_watching=True",
    ]
