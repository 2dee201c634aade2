"""Sessions per process and server work per tick, with the scripted model.

Starts `murmur serve --model scripted:…` in a subprocess (so the server has the
machine's cores to itself apart from this light client), then opens N concurrent
1 fps sessions that send JPEG frames at random phases with the tick trace on.
For each N it prints tick slip (p50/p99/max, ms), coalesced ticks, and the
server's own work per tick, model excluded (p50/p99, ms, from the trace's stage
timings), split into the event loop's share ("loop": snapshot, policy,
dispatch) and the frame's JPEG decode, which runs in a 2-thread pool (so under
load it includes waiting for a thread). Budgets (shared/DESIGN.md §7): p99 work ≤ 5 ms; ≥ 100 sessions with
slip ≤ 100 ms.

    python benchmarks/bench_sessions.py --sessions 25,50,100,150 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import tempfile
import time

import grpc
from murmur.v1 import companion_pb2 as pb
from murmur.v1 import companion_pb2_grpc as pb_grpc
from PIL import Image, ImageDraw
from serving import start_scripted_server  # benchmarks/serving.py, beside this file

MODEL_STAGES = {"model"}


def in_model(stage: str) -> bool:
    """The model stage or one of its parts ("model.decide", "model.reply"), which
    the trace lists too but which are inside "model", not added to it."""
    return stage in MODEL_STAGES or stage.startswith("model.")


def make_jpegs(n: int = 8) -> list[bytes]:
    out = []
    for i in range(n):
        img = Image.new("RGB", (448, 336), (60 + i * 10, 80, 120))
        d = ImageDraw.Draw(img)
        d.rectangle((40 + i * 20, 60, 140 + i * 20, 300), fill=(200, 180, 90))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=75)
        out.append(buf.getvalue())
    return out


async def one_session(
    address: str, seconds: float, jpegs: list[bytes], ticks: list[pb.Tick]
) -> None:
    async with grpc.aio.insecure_channel(address) as ch:
        call = pb_grpc.CompanionStub(ch).Converse()
        await call.write(
            pb.ClientEvent(session_start=pb.SessionStart(want_trace=True, client_name="bench"))
        )

        async def reader() -> None:
            while (msg := await call.read()) is not grpc.aio.EOF:
                if msg.WhichOneof("event") == "tick":
                    ticks.append(msg.tick)

        rd = asyncio.create_task(reader())
        await asyncio.sleep(random.random())  # random phase against the server's ticks
        t0 = time.monotonic()
        seq = 0
        while time.monotonic() - t0 < seconds:
            seq += 1
            await call.write(
                pb.ClientEvent(
                    video_frame=pb.VideoFrame(
                        seq=seq,
                        capture_time_ms=int(time.time() * 1000),
                        data=jpegs[seq % len(jpegs)],
                    )
                )
            )
            await asyncio.sleep(t0 + seq - time.monotonic())
        await call.done_writing()
        await rd


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


async def run_level(address: str, n: int, seconds: float, jpegs: list[bytes]) -> dict[str, float]:
    ticks: list[pb.Tick] = []
    await asyncio.gather(*(one_session(address, seconds, jpegs, ticks) for _ in range(n)))
    steady = [t for t in ticks if t.tick_s >= 2.0]  # skip the start-up second
    slips = [t.slip_ms for t in steady]
    work = [sum(s.ms for s in t.timings if not in_model(s.stage)) for t in steady]
    loop_work = [
        sum(s.ms for s in t.timings if not in_model(s.stage) and s.stage != "decode")
        for t in steady
    ]
    decode = [s.ms for t in steady for s in t.timings if s.stage == "decode"]
    hop = [sum(s.ms for s in t.timings if s.stage in MODEL_STAGES) for t in steady]
    ages = [t.frame_age_ms for t in steady if t.frame_age_ms >= 0]
    return {
        "sessions": n,
        "ticks": len(steady),
        "expected_ticks": n * max(0, int(seconds) - 2),
        "slip_p50": pct(slips, 50),
        "slip_p99": pct(slips, 99),
        "slip_max": max(slips, default=float("nan")),
        "coalesced": sum(t.coalesced for t in steady),
        "work_p50": pct(work, 50),
        "work_p99": pct(work, 99),
        "loop_p99": pct(loop_work, 99),
        "decode_p50": pct(decode, 50),
        "decode_p99": pct(decode, 99),
        "model_hop_p50": pct(hop, 50),
        "frame_age_p50": pct(ages, 50),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sessions", default="25,50,100,150", help="comma-separated session counts")
    ap.add_argument("--seconds", type=float, default=20.0, help="duration of each level")
    args = ap.parse_args()
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write(json.dumps({"at": 10_000, "output": "</silence>"}) + "\n")
        script = f.name
    proc, address = start_scripted_server(script)
    jpegs = make_jpegs()
    print(
        f"server {address} (pid {proc.pid}), {os.cpu_count()} cores; {args.seconds:.0f} s per level"
    )
    hdr = ("sessions", "ticks", "slip p50", "slip p99", "slip max", "coalesced", "work p50", "work p99",
           "loop p99", "decode p50", "decode p99", "frame age p50")  # fmt: skip
    print("  ".join(f"{h:>10}" for h in hdr))
    best = 0
    try:
        for n in (int(x) for x in args.sessions.split(",")):
            r = asyncio.run(run_level(address, n, args.seconds, jpegs))
            print("  ".join(f"{v:>10.2f}" if isinstance(v, float) else f"{v:>10}" for v in (
                r["sessions"], f'{r["ticks"]}/{r["expected_ticks"]}', r["slip_p50"], r["slip_p99"],
                r["slip_max"], r["coalesced"], r["work_p50"], r["work_p99"], r["loop_p99"],
                r["decode_p50"], r["decode_p99"], r["frame_age_p50"],
            )), flush=True)  # fmt: skip
            if r["slip_p99"] <= 100 and r["coalesced"] == 0:
                best = n
    finally:
        proc.terminate()
        proc.wait(10)
        os.unlink(script)
    print(f"largest level held with p99 slip <= 100 ms and no coalesced ticks: {best} sessions")
    print("budgets: work p99 <= 5 ms; >= 100 sessions")


if __name__ == "__main__":
    main()
