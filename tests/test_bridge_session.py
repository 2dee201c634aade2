"""``BridgeSession`` between a fake source and a fake link, on virtual time.

Fakes at the boundary (the device, the network, the speaker); a ``ManualClock`` jumps
to the next sleeper's deadline whenever every task is idle, so lingering and timeouts
take no real time. The fakes live in ``tests/fakes.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.client import BridgeSession, SessionOptions
from mobile_bridge.errors import LinkError
from mobile_bridge.sources.base import GlassesSource, JpegFrame, OpusPacket, SourceCapabilities
from tests.fakes import FakeLink, FakeSource, ManualClock, RecordingSink


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


class _CameraDiesMicrophoneRuns(GlassesSource):
    """A camera that fails after one frame beside a microphone that never runs dry."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock, self.microphone_closed = clock, False

    @property
    def capabilities(self) -> SourceCapabilities:
        return SourceCapabilities(camera=True, microphone=True)

    async def frames(self):
        yield JpegFrame(b"\xff\xd8frame0", 1000)
        await self.clock.sleep(0.1)
        raise LinkError("the camera stopped delivering frames")

    async def audio(self):
        try:
            while True:
                await self.clock.sleep(0.02)
                yield OpusPacket(b"\xf8\xff\xfe", 2000)
        finally:
            self.microphone_closed = True


async def test_a_failing_pump_stops_the_others_too():
    clock, link = ManualClock(), FakeLink()
    source = _CameraDiesMicrophoneRuns(clock)
    session, _, _ = _session(source, link, clock)
    with pytest.raises(LinkError, match="camera stopped"):
        await clock.run(session.run())
    assert source.microphone_closed  # the audio pump was stopped, not left pending


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


@pytest.mark.parametrize("out", [False, True], ids=["captions only", "WAVs written"])
async def test_speaker_is_declared_only_when_something_uses_the_audio(tmp_path, out):
    from mobile_bridge.sinks.audio import AudioSink

    clock = ManualClock()
    reply = (_speech(), _audio("u1", b"a" * 40), _audio("u1", last=True))
    link = FakeLink(_on_first_frame(*reply))
    sink = AudioSink(24000, opus_packets=False, out_dir=tmp_path if out else None)
    session = BridgeSession(FakeSource(), sink, link.open, SessionOptions(), clock=clock)
    await clock.run(session.run())
    assert link.start is not None
    # No player: nobody hears it. WAVs need the audio, but a file is not the wearer.
    assert link.start.capabilities.speaker is out
    assert _reports(link) == [("u1", 0, False, False)]
