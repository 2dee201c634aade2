"""The bridge's link and replay against a tiny in-test ``Companion`` on loopback.

The fake servicer uses the generated base class and a real ``grpc.aio`` server
on port 0, so these tests exercise the real wire: SessionStart first, frames
and Opus audio out, captions and Opus audio back, playback reports, resume on
UNAVAILABLE, and the errors a person sees.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.connection import Backoff, LinkOptions
from mobile_bridge.errors import LinkError, explain_status
from mobile_bridge.media import write_wav_pcm16
from mobile_bridge.replay import ReplayOptions, run_replay
from mobile_bridge.synth import write_synthetic_clip
from tests.fakes import BRIDGE_SAY as SAY
from tests.fakes import FakeCompanion
from tests.fakes import companion_server as fake_server


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_clip(tmp_path_factory.mktemp("clip") / "walk.mp4", 2.0, 10.0)


def _opts(clip: Path, target: str, **kw: object) -> ReplayOptions:
    opts = ReplayOptions(
        video=clip,
        link=LinkOptions(target=target, connect_timeout_s=2.0, backoff=Backoff(0.1)),
        fps=2.0,
        speed=4.0,  # the fake has no clock of its own; keep the test quick
        linger_s=0.5,
        echo=None,
    )
    for k, v in kw.items():
        setattr(opts, k, v)
    return opts


async def test_replay_sends_start_first_and_collects_speech_and_audio(clip: Path, tmp_path: Path):
    wav = write_wav_pcm16(
        tmp_path / "q.wav", (np.sin(np.arange(8000) / 5) * 5000).astype(np.int16), 16000
    )
    fake = FakeCompanion()
    lines: list[str] = []
    async with fake_server(fake) as target:
        report = await run_replay(
            _opts(
                clip, target, audio=wav, mode="blind", out_dir=tmp_path / "out", echo=lines.append
            )
        )

    events = fake.calls[0]
    start = events[0].session_start
    assert events[0].WhichOneof("event") == "session_start"
    assert start.mode == pb.MODE_BLIND and start.want_trace and start.language == "en"
    assert (start.audio_in.encoding, start.audio_in.sample_rate_hz, start.audio_in.frame_ms) == (
        pb.AUDIO_ENCODING_OPUS,
        16000,
        20,
    )
    assert (start.audio_out.sample_rate_hz, start.video_encoding) == (24000, pb.VIDEO_ENCODING_JPEG)
    assert start.client_name.startswith("murmur-bridge/")

    kinds = [e.WhichOneof("event") for e in events]
    assert report.frames_sent == kinds.count("video_frame") == 4
    assert report.audio_packets_sent == kinds.count("audio_chunk") == 25  # 0.5 s of 20 ms packets
    frames = [e.video_frame for e in events if e.HasField("video_frame")]
    assert all(f.data[:2] == b"\xff\xd8" for f in frames)
    gaps = np.diff([f.capture_time_ms for f in frames])
    assert np.all((gaps > 100) & (gaps < 150))  # 0.5 s of media at 4x speed, on the wall clock

    assert report.speeches == [("u1", SAY, pb.SPEECH_KIND_ALERT)]
    pcm, rate = report.audio["u1"]
    assert rate == 24000 and pcm.size == 3 * 480
    assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 1000
    assert report.wavs["u1"].is_file()
    reports = [e.playback_report for e in events if e.HasField("playback_report")]
    # WAVs written are not heard: the server is asked for audio, and told none was heard.
    assert start.capabilities.speaker
    assert [(r.utterance_id, r.finished, r.played_ms) for r in reports] == [("u1", False, 0)]

    assert [t.action for t in report.ticks] == ["response"]
    (lat,) = report.latencies
    assert lat.utterance_id == "u1" and lat.speech_to_audio_ms is not None
    assert lat.decision_to_audio_ms is not None and lat.model_ms == 40.0
    assert any("alert: " + SAY in line for line in lines)


async def test_reconnects_with_the_resume_token_after_unavailable(clip: Path):
    fake = FakeCompanion(drop_after_frames=0)
    lines: list[str] = []
    async with fake_server(fake) as target:
        report = await run_replay(_opts(clip, target, echo=lines.append))
    assert len(fake.calls) == 2
    assert fake.calls[0][0].session_start.resume_token == ""
    assert fake.calls[1][0].session_start.resume_token == "resume-1"
    assert report.reconnects == 1 and report.session_ready is not None
    assert report.session_ready.session_id == "s1"  # resumed, not a new session
    assert [s[0] for s in report.speeches] == ["u1"]
    assert any("UNAVAILABLE" in line for line in lines)


async def test_go_away_reconnects_after_the_servers_delay(clip: Path):
    fake = FakeCompanion(go_away_first_call=True)
    lines: list[str] = []
    async with fake_server(fake) as target:
        report = await run_replay(_opts(clip, target, echo=lines.append))
    assert [c[0].session_start.resume_token for c in fake.calls] == ["", "resume-1"]
    assert report.reconnects == 1 and report.speeches
    assert any("draining (upgrading)" in line for line in lines)


async def test_stop_speaking_cuts_the_utterance_and_reports_it(clip: Path):
    fake = FakeCompanion(cut=True)
    async with fake_server(fake) as target:
        report = await run_replay(_opts(clip, target))
    assert report.stop_speaking == ["u1"]
    pcm, _ = report.audio["u1"]
    assert pcm.size == 2 * 480  # what arrived before the cut
    reports = [e.playback_report for e in fake.calls[0] if e.HasField("playback_report")]
    assert [(r.utterance_id, r.interrupted, r.finished, r.played_ms) for r in reports] == [
        ("u1", True, False, 0)  # cut, and nothing heard (only written to a WAV)
    ]


def test_status_messages_say_what_to_do():
    msg = explain_status(grpc.StatusCode.INVALID_ARGUMENT, "unsupported audio in format", "h:1")
    assert "rejected the session: unsupported audio in format" in msg
    assert "murmur serve" in explain_status(grpc.StatusCode.UNAVAILABLE, "", "h:1")
    assert "pair" in explain_status(grpc.StatusCode.UNAUTHENTICATED, "no token", "h:1")


async def test_token_is_sent_and_a_bad_one_says_to_pair(clip: Path):
    fake = FakeCompanion(token="secret")
    async with fake_server(fake) as target:
        opts = _opts(clip, target)
        opts.link.token = "wrong"
        with pytest.raises(LinkError, match="murmur-bridge pair") as info:
            await run_replay(opts)
        assert info.value.code is grpc.StatusCode.UNAUTHENTICATED
        opts.link.token = "secret"
        report = await run_replay(opts)
    assert fake.metadata[-1]["authorization"] == "Bearer secret"
    assert report.speeches


async def test_unreachable_server_names_the_address(clip: Path):
    opts = _opts(clip, "127.0.0.1:1")
    opts.link.connect_timeout_s = 0.5
    with pytest.raises(LinkError, match=r"127\.0\.0\.1:1.*murmur serve"):
        await run_replay(opts)
