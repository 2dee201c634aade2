"""``BridgeSession`` between a fake source and a fake link, on virtual time.

Fakes at the boundary (the device, the network, the speaker); a ``ManualClock`` jumps
to the next sleeper's deadline whenever every task is idle, so lingering and timeouts
take no real time. The fakes live here until ``tests/fakes.py`` takes bridge fakes.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import numpy as np
import pytest
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.client import BridgeSession, SessionOptions
from mobile_bridge.clock import Clock
from mobile_bridge.link import LinkError, LinkOptions
from mobile_bridge.sinks.base import SpeechSink, UtteranceAudio
from mobile_bridge.sources.base import GlassesSource, JpegFrame, OpusPacket, SourceCapabilities

T = TypeVar("T")
UNIX0 = 1_700_000_000.0
READY = pb.ServerEvent(session_ready=pb.SessionReady(session_id="s1", model="fake", tick_hz=1))
CAMERA_AND_MIC = SourceCapabilities(camera=True, microphone=True, speaker=True, still_capture=True)


class ManualClock(Clock):
    """Virtual time: ``run`` lets every task settle, then wakes the earliest sleeper."""

    SETTLE_ROUNDS = 50

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return UNIX0 + self.now

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._order), fut))
        await fut

    async def run(self, aw: Awaitable[T]) -> T:
        task = asyncio.ensure_future(aw)
        idle = 0
        while not task.done():
            for _ in range(self.SETTLE_ROUNDS):
                await asyncio.sleep(0)  # a yield, not a wait: every runnable task moves on
            if task.done() or self._wake_next():
                idle = 0
                continue
            idle += 1  # nobody sleeps on the clock: a worker thread is still busy
            assert idle < 20_000, "deadlock: the task waits on something that never comes"
        return task.result()

    def _wake_next(self) -> bool:
        while self._sleepers:
            due, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():  # cancelled timers stay in the heap until here
                self.now = max(self.now, due)
                fut.set_result(None)
                return True
        return False


_CLOSE = object()


class FakeLink:
    """``BridgeLink``'s surface in memory, with a scripted server behind it.

    ``respond`` maps each client event the server receives to the events it answers
    with; half-closing ends the session unless ``ignore_close``.
    """

    def __init__(
        self,
        respond: Callable[[pb.ClientEvent], Sequence[pb.ServerEvent]] = lambda ev: (),
        *,
        greet: Sequence[pb.ServerEvent] = (READY,),
        ignore_close: bool = False,
    ) -> None:
        self.options = LinkOptions(target="fake:1")
        self.outbox: asyncio.Queue[object] = asyncio.Queue(64)
        self.reconnects = 0
        self.start: pb.SessionStart | None = None
        self.sent: list[pb.ClientEvent] = []
        self._respond = respond
        self._ignore_close = ignore_close
        self._server: asyncio.Queue[pb.ServerEvent | None] = asyncio.Queue()
        for ev in greet:
            self._server.put_nowait(ev)

    def open(self, start: pb.SessionStart) -> FakeLink:
        self.start = start
        return self

    def end(self) -> None:
        self._server.put_nowait(None)

    async def events(self) -> AsyncIterator[pb.ServerEvent]:
        pump = asyncio.create_task(self._pump())
        try:
            while (ev := await self._server.get()) is not None:
                yield ev
        finally:
            pump.cancel()

    async def send(self, event: pb.ClientEvent) -> None:
        await self.outbox.put(event)

    async def close(self) -> None:
        await self.outbox.put(_CLOSE)

    def cancel(self) -> None:
        self.end()

    def kinds(self) -> list[str]:
        return [e.WhichOneof("event") or "" for e in self.sent]

    async def _pump(self) -> None:
        while (item := await self.outbox.get()) is not _CLOSE:
            assert isinstance(item, pb.ClientEvent)
            self.sent.append(item)
            for ev in self._respond(item):
                self._server.put_nowait(ev)
        if not self._ignore_close:
            self.end()


class FakeSource(GlassesSource):
    """Frames, packets and texts handed over at once, or every ``period_s`` on a clock."""

    def __init__(
        self,
        caps: SourceCapabilities = CAMERA_AND_MIC,
        *,
        frames: int = 2,
        packets: int = 3,
        texts: Sequence[str] = (),
        clock: ManualClock | None = None,
        period_s: float = 1.0,
    ) -> None:
        self._caps = caps
        self._frames, self._packets, self._texts = frames, packets, texts
        self._clock, self._period = clock, period_s
        self.started = 0
        self.stills_taken = 0
        self.audio_read = False

    @property
    def capabilities(self) -> SourceCapabilities:
        return self._caps

    def start(self) -> None:
        self.started += 1

    async def frames(self) -> AsyncIterator[JpegFrame]:
        for i in itertools.count():
            if i == self._frames:
                return
            if self._clock is not None and i:
                await self._clock.sleep(self._period)
            yield JpegFrame(b"\xff\xd8frame%d" % i, 1000 + i)

    async def audio(self) -> AsyncIterator[OpusPacket]:
        self.audio_read = True
        for i in range(self._packets):
            yield OpusPacket(b"opus%d" % i, 2000 + 20 * i)

    async def texts(self) -> AsyncIterator[str]:
        for text in self._texts:
            yield text

    async def capture_still(self) -> JpegFrame | None:
        self.stills_taken += 1
        return JpegFrame(b"\xff\xd8still", 5000)


class RecordingSink(SpeechSink):
    """Keeps every call; 2 bytes of packet count as one played sample at 1 kHz."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, object]] = []
        self.bytes: dict[str, int] = {}

    def feed(self, utterance_id: str, packet: bytes) -> None:
        self.calls.append(("feed", utterance_id, packet))
        self.bytes[utterance_id] = self.bytes.get(utterance_id, 0) + len(packet)

    def finish(self, utterance_id: str, *, interrupted: bool = False) -> UtteranceAudio:
        self.calls.append(("finish", utterance_id, interrupted))
        pcm = np.zeros(self.bytes.get(utterance_id, 0) // 2, np.int16)
        return UtteranceAudio(utterance_id, 1000, pcm, finished=True, interrupted=interrupted)

    def finish_all(self) -> None:
        self.calls.append(("finish_all", "", None))


def _speech(uid: str = "u1", text: str = "Door ahead.") -> pb.ServerEvent:
    return pb.ServerEvent(speech=pb.Speech(utterance_id=uid, text=text, kind=pb.SPEECH_KIND_ALERT))


def _audio(uid: str, data: bytes = b"", *, last: bool = False) -> pb.ServerEvent:
    return pb.ServerEvent(audio_out=pb.AudioOut(utterance_id=uid, data=data, last=last))


def _on_first_frame(*reply: pb.ServerEvent) -> Callable[[pb.ClientEvent], list[pb.ServerEvent]]:
    seen: list[pb.ClientEvent] = []

    def respond(ev: pb.ClientEvent) -> list[pb.ServerEvent]:
        if ev.HasField("video_frame") and not seen:
            seen.append(ev)
            return list(reply)
        return []

    return respond


def _session(
    source: GlassesSource, link: FakeLink, clock: ManualClock, **options: float
) -> tuple[BridgeSession, RecordingSink, list[str]]:
    sink, said = RecordingSink(), list[str]()
    opts = SessionOptions()
    for name, value in options.items():
        setattr(opts, name, value)
    session = BridgeSession(source, sink, link.open, opts, say=said.append, clock=clock)
    return session, sink, said


def _reports(link: FakeLink) -> list[tuple[str, int, bool, bool]]:
    return [
        (r.utterance_id, r.played_ms, r.finished, r.interrupted)
        for e in link.sent
        if e.HasField("playback_report")
        for r in [e.playback_report]
    ]


async def test_media_is_pumped_after_ready_with_sequence_numbers():
    clock, link = ManualClock(), FakeLink()
    source = FakeSource(texts=["what is this?"])
    session, sink, _ = _session(source, link, clock)
    await clock.run(session.run())

    assert link.start is not None and link.start.capabilities.speaker
    assert source.started == 1
    frames = [e.video_frame for e in link.sent if e.HasField("video_frame")]
    assert [(f.seq, f.capture_time_ms, f.data) for f in frames] == [
        (0, 1000, b"\xff\xd8frame0"),
        (1, 1001, b"\xff\xd8frame1"),
    ]
    chunks = [e.audio_chunk for e in link.sent if e.HasField("audio_chunk")]
    assert [(c.seq, c.capture_time_ms) for c in chunks] == [(0, 2000), (1, 2020), (2, 2040)]
    assert [e.text_input.text for e in link.sent if e.HasField("text_input")] == ["what is this?"]
    assert sink.calls == [("finish_all", "", None)]


async def test_a_source_without_a_microphone_is_not_read_for_audio():
    clock, link = ManualClock(), FakeLink()
    source = FakeSource(SourceCapabilities(camera=True))
    session, _, _ = _session(source, link, clock)
    await clock.run(session.run())
    assert link.kinds() == ["video_frame", "video_frame"] and not source.audio_read


async def test_audio_out_goes_to_the_sink_and_its_last_packet_sends_a_finished_report():
    clock = ManualClock()
    reply = (_speech(), _audio("u1", b"a" * 40), _audio("u1", b"b" * 40), _audio("u1", last=True))
    link = FakeLink(_on_first_frame(*reply))
    session, sink, _ = _session(FakeSource(), link, clock)
    await clock.run(session.run())

    assert sink.calls[:4] == [
        ("feed", "u1", b"a" * 40),
        ("feed", "u1", b"b" * 40),
        ("feed", "u1", b""),
        ("finish", "u1", False),
    ]
    assert _reports(link) == [("u1", 40, True, False)]  # 40 samples at 1 kHz


async def test_stop_speaking_cuts_the_sink_and_reports_what_was_played():
    clock = ManualClock()
    stop = pb.ServerEvent(stop_speaking=pb.StopSpeaking(utterance_ids=["u1", "never-began"]))
    link = FakeLink(_on_first_frame(_speech(), _audio("u1", b"a" * 20), stop))
    session, sink, _ = _session(FakeSource(), link, clock)
    await clock.run(session.run())

    assert ("finish", "u1", True) in sink.calls
    assert not any(c[1] == "never-began" for c in sink.calls)
    assert _reports(link) == [("u1", 10, False, True)]


async def test_still_request_takes_a_still_and_sends_it_high_res():
    clock = ManualClock()
    link = FakeLink(_on_first_frame(pb.ServerEvent(still_request=pb.StillRequest())))
    source = FakeSource()
    session, _, _ = _session(source, link, clock)
    await clock.run(session.run())

    assert source.stills_taken == 1
    (still,) = [e.video_frame for e in link.sent if e.video_frame.high_res]
    assert (still.data, still.capture_time_ms) == (b"\xff\xd8still", 5000)


async def test_still_request_is_ignored_without_still_capture():
    clock = ManualClock()
    link = FakeLink(_on_first_frame(pb.ServerEvent(still_request=pb.StillRequest())))
    source = FakeSource(SourceCapabilities(camera=True))
    session, _, _ = _session(source, link, clock)
    await clock.run(session.run())
    assert source.stills_taken == 0 and link.kinds() == ["video_frame", "video_frame"]


async def test_a_failed_still_is_said_and_the_session_goes_on():
    class LensCapOn(FakeSource):
        async def capture_still(self) -> JpegFrame | None:
            raise OSError("lens cap on")

    clock = ManualClock()
    link = FakeLink(_on_first_frame(pb.ServerEvent(still_request=pb.StillRequest())))
    session, _, said = _session(LensCapOn(), link, clock)
    await clock.run(session.run())
    assert said == ["(could not take the still the server asked for: lens cap on)"]
    assert link.kinds().count("video_frame") == 2


@pytest.mark.parametrize(("reply_ends", "lingered"), [(True, 2.0), (False, 5.0)])
async def test_lingers_for_trailing_speech_and_longer_while_it_plays(reply_ends, lingered):
    clock = ManualClock()
    reply = [_speech(), _audio("u1", b"a" * 8)] + ([_audio("u1", last=True)] if reply_ends else [])
    link = FakeLink(_on_first_frame(*reply))
    session, _, _ = _session(FakeSource(), link, clock, linger_s=2.0, linger_max_s=5.0)
    t0 = clock.now
    await clock.run(session.run())
    assert clock.now - t0 == pytest.approx(lingered, abs=0.06)


async def test_a_live_source_stops_when_the_server_ends_the_session():
    clock = ManualClock()

    def respond(ev: pb.ClientEvent) -> list[pb.ServerEvent]:
        if ev.HasField("video_frame") and ev.video_frame.seq == 2:
            link.end()
        return []

    link = FakeLink(respond)
    source = FakeSource(frames=10**6, packets=0, clock=clock)  # a camera that never runs dry
    session, sink, said = _session(source, link, clock)
    await clock.run(session.run())
    assert link.kinds().count("video_frame") == 3
    assert "(the server ended the session before the media did)" in said
    assert sink.calls[-1][0] == "finish_all"


async def test_no_session_ready_in_time_says_so_on_the_clock():
    clock = ManualClock()
    link = FakeLink(greet=())
    session, _, _ = _session(FakeSource(), link, clock, ready_timeout_s=15.0)
    t0 = clock.now
    with pytest.raises(LinkError, match=r"fake:1 sent no SessionReady within 15 s"):
        await clock.run(session.run())
    assert clock.now - t0 == pytest.approx(15.0)
    assert link.sent == []


async def test_a_stream_that_ends_before_ready_says_so():
    clock = ManualClock()
    link = FakeLink(greet=())
    link.end()
    session, _, _ = _session(FakeSource(), link, clock)
    with pytest.raises(LinkError, match="ended the stream before SessionReady"):
        await clock.run(session.run())


async def test_a_server_that_ignores_the_half_close_is_cut_off():
    clock = ManualClock()
    link = FakeLink(ignore_close=True)
    session, _, said = _session(FakeSource(), link, clock, linger_s=0.0, close_timeout_s=5.0)
    t0 = clock.now
    await clock.run(session.run())
    assert clock.now - t0 == pytest.approx(5.0, abs=0.06)
    assert said == ["(the server did not end the session after the bridge finished; closing)"]
