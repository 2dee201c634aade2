"""End to end: the real bridge replays a synthetic walk to a real server on port 0.

Scripted model (the parser runs on its raw outputs), Piper speech, Opus both ways.
"""

from __future__ import annotations

import numpy as np

from mobile_bridge.connection import LinkOptions
from mobile_bridge.replay import ReplayOptions, run_replay
from mobile_bridge.synth import write_synthetic_clip
from server.config import Settings
from tests.harness import running_server, scripted

SECONDS = 6


async def test_replay_walk_gets_spoken_guidance_and_a_tick_per_second(tts, tmp_path):
    clip = tmp_path / "walk.mp4"
    write_synthetic_clip(clip, seconds=SECONDS, fps=10)
    runtime = scripted((2, "</response> Door on your left."), (4, "there is a door"))
    async with running_server(runtime, tts, Settings()) as srv:
        report = await run_replay(
            ReplayOptions(
                video=clip,
                link=LinkOptions(target=srv.address),
                fps=1.0,
                out_dir=tmp_path / "out",
                want_trace=True,
                echo=None,
            )
        )
    # One tick per second of video (±1), labelled with real elapsed seconds.
    labels = [t.tick_s for t in report.ticks]
    assert abs(len(labels) - SECONDS) <= 1, labels
    assert labels == sorted(labels) and len(set(labels)) == len(labels)
    assert report.frames_sent == SECONDS
    # Only the scripted reply is spoken: silent ticks, and the unmarked output at 4 s, send nothing.
    assert [text for _, text, _ in report.speeches] == ["Door on your left."]
    assert [t.action for t in report.ticks].count("response") == 1
    assert report.notices == []
    uid = report.speeches[0][0]
    pcm, rate = report.audio[uid]
    assert rate == 24000
    assert pcm.size > rate * 0.5
    assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 300
    assert report.wavs[uid].exists()
    # The decision reached the ear quickly, and the trace says where the time went.
    lat = report.latencies[0]
    assert lat.speech_to_audio_ms is not None
    spoken_tick = next(t for t in report.ticks if t.action == "response")
    assert spoken_tick.tick_s >= 2.0
    assert 0 <= spoken_tick.frame_age_ms < 1000
