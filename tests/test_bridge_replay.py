"""The bridge's pieces around the session: SessionStart, the file source on virtual
time, the report's latency matching and counting, and the console's lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from murmur.v1 import companion_pb2 as pb
from PIL import Image

from mobile_bridge.client import SessionOptions, session_start
from mobile_bridge.media import decode_jpeg_size
from mobile_bridge.report import Arrivals, ReportRecorder, match_latencies
from mobile_bridge.sinks.console import ConsoleLog
from mobile_bridge.sources.base import JpegFrame, SourceCapabilities
from mobile_bridge.sources.replay import FileReplaySource, ReplayMedia
from tests.fakes import READY, UNIX0, SteppingClock


def test_session_start_says_what_the_source_has():
    caps = SourceCapabilities(camera=True, speaker=True, haptics=True, mic_rate_hz=8000)
    start = session_start(caps, SessionOptions(mode="navigation", want_trace=False))
    assert start.mode == pb.MODE_NAVIGATION and not start.want_trace
    assert (start.capabilities.speaker, start.capabilities.haptics) == (True, True)
    assert not start.capabilities.display
    assert (start.audio_in.sample_rate_hz, start.audio_in.frame_ms) == (8000, 20)
    assert start.client_name.startswith("murmur-bridge/")
    with pytest.raises(ValueError, match="unknown mode 'disco'"):
        session_start(caps, SessionOptions(mode="disco"))


# --------------------------------------------------------------------------- file source


@pytest.fixture
def stills(tmp_path: Path) -> Path:
    for i in range(3):
        Image.new("RGB", (320, 240), (80 * i, 0, 0)).save(tmp_path / f"{i}.png")
    return tmp_path


async def test_file_replay_paces_frames_and_text_on_the_media_timeline(stills: Path):
    clock = SteppingClock()
    media = ReplayMedia(video=stills, texts=[(1.5, "second"), (0.2, "first")], fps=2.0, speed=2.0)
    source = await FileReplaySource.open(media, clock)
    assert source.capabilities.camera and not source.capabilities.microphone
    assert source.media_time() is None and await source.capture_still() is None
    source.start()
    t0 = clock.now

    async def frames() -> list[tuple[float, JpegFrame]]:
        return [(clock.now - t0, f) async for f in source.frames()]

    got = await frames()
    # media 0, 0.5, 1.0 s at speed 2: on the clock every 0.25 s, stamped with those times
    assert [at for at, _ in got] == pytest.approx([0.0, 0.25, 0.5])
    assert [f.capture_time_ms for _, f in got] == [
        int((UNIX0 + t0 + d) * 1000) for d in (0, 0.25, 0.5)
    ]
    assert decode_jpeg_size(got[0][1].jpeg) == (320, 240)
    assert source.media_time() == pytest.approx(1.0)
    still = await source.capture_still()
    assert still is not None and still.jpeg == got[-1][1].jpeg

    async def texts() -> list[str]:
        return [t async for t in source.texts()]

    assert await texts() == ["first", "second"]
    assert clock.now - t0 == pytest.approx(0.75)


async def test_file_replay_rejects_bad_pacing_before_reading(stills: Path):
    with pytest.raises(ValueError, match="must be positive"):
        await FileReplaySource.open(ReplayMedia(video=stills, speed=0.0))


# --------------------------------------------------------------------------- report, console


def _tick(text: str, model_ms: float) -> pb.Tick:
    return pb.Tick(
        tick_s=3.0,
        action="response",
        text=text,
        timings=[pb.StageTiming(stage="model", ms=model_ms)],
    )


def test_latency_matches_the_tick_whose_text_the_caption_begins():
    a = Arrivals(
        first_speech={"u1": 10.0},
        first_audio={"u1": 10.3},
        speech_text={"u1": "Door ahead."},
        ticks=[(9.8, _tick("Something else.", 10.0)), (9.9, _tick("Door ahead. Go left.", 40.0))],
    )
    (lat,) = match_latencies(a)
    assert lat.speech_to_audio_ms == pytest.approx(300)
    assert lat.decision_to_audio_ms == pytest.approx(400)
    assert (lat.tick_s, lat.model_ms) == (3.0, 40.0)


def test_recorder_counts_what_was_sent_but_not_stills():
    rec = ReportRecorder()
    for ev in (
        pb.ClientEvent(video_frame=pb.VideoFrame(data=b"x")),
        pb.ClientEvent(video_frame=pb.VideoFrame(data=b"x", high_res=True)),
        pb.ClientEvent(audio_chunk=pb.AudioChunk(data=b"o")),
        pb.ClientEvent(text_input=pb.TextInput(text="hi")),
    ):
        rec.sent(ev, 0.0)
    rec.received(pb.ServerEvent(still_request=pb.StillRequest()), 1.0)
    report = rec.finish({}, reconnects=2, wall_s=3.0)
    assert (report.frames_sent, report.audio_packets_sent, report.texts_sent) == (1, 1, 1)
    assert (report.still_requests, report.reconnects, report.wall_s) == (1, 2, 3.0)


def test_console_stamps_lines_with_the_timeline():
    lines: list[str] = []
    media_t: list[float | None] = [None]
    console = ConsoleLog(lines.append, lambda: media_t[0], trace=True)
    console.received(pb.ServerEvent(notice=pb.Notice(component="asr", code="x", message="m")), 0)
    console.received(READY, 0)
    media_t[0] = 3.04
    console.received(
        pb.ServerEvent(
            speech=pb.Speech(utterance_id="u1", text="Door.", kind=pb.SPEECH_KIND_ALERT)
        ),
        0,
    )
    console.received(pb.ServerEvent(tick=pb.Tick(tick_s=3, action="silence")), 0)
    console.received(pb.ServerEvent(tick=_tick("Door.", 40.0)), 0)
    console.received(READY, 0)
    console.sent(pb.ClientEvent(text_input=pb.TextInput(text="where?")), 0)
    assert lines == [
        "[  --  ] notice [asr] x: m",
        "session s1 ready: model fake, 1 ticks/s",
        "[   3.0s] alert: Door.",
        "[   3.0s] tick 3: response model=40ms frame_age=0ms",
        "session resumed as s1",
        "[   3.0s] you typed: where?",
    ]
