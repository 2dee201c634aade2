"""A family on one GPU: 4 sessions at 1 Hz, batched vs one after another.

The tiny random Qwen3-VL (tests/tiny_qwen.py, loaded through
``TransformersRuntime.load``) on the CPU, four sessions whose ticks fall due
together each second (a few ms apart), each with its own frame size. Run twice:
batched (``batch_window_ms`` 5: their forwards packed into one, batch.py) and
sequential (``batch_window_ms`` 0: one model thread, each step alone); ``--window-ms``
sets the batched run's window. Printed per
mode: model time per second of session time (the model's forwards, and the span
of each round from its first step to its last action), each session's tick slip (due → its step began, and due →
its action came back), ticks lost (a tick due while that session's last step was
still running coalesces away), and the batched/sequential ratios. One run.

    python benchmarks/bench_batched.py [--seconds 20] [--sessions 4]

Budget (shared/DESIGN.md §7): 4 wearers at 1 fps on one 24 GB GPU, batched, silent
tick p95 ≤ 250 ms; here on the CPU only the ratios mean anything.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from PIL import Image

from server.runtime.base import Action, Frame, TickInput
from server.runtime.transformers import TransformersOptions, TransformersRuntime
from tests.tiny_qwen import build_tiny_qwen

SIZES = [(640, 480), (448, 448), (320, 240), (480, 640)]


@dataclass
class Lane:
    """One session's ticks: when each was due, began and came back; what was lost."""

    began: list[float] = field(default_factory=list)  # due → step began, ms
    done: list[float] = field(default_factory=list)  # due → action back, ms
    waits: list[float] = field(default_factory=list)  # the step's own model wait, ms
    batches: list[int] = field(default_factory=list)
    lost: int = 0
    running: Future[Action] | None = None


def _image(seed: int, size: tuple[int, int]) -> Image.Image:
    w, h = size
    g = torch.Generator().manual_seed(seed)
    return Image.fromarray(torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8).numpy())


def run(folder: Path, *, window_ms: float, seconds: int, sessions: int) -> dict[str, object]:
    options = TransformersOptions(
        speak_margin=1e9,  # silent ticks: the decision forward is the tick
        batch_window_ms=window_ms,
        batch_sessions=sessions,
        background_summary=True,
    )
    rt = TransformersRuntime.load(str(folder), device="cpu", options=options)
    # The model's own forwards, timed (one per forward, whatever it holds).
    forward_s: list[float] = []
    inner = rt.loaded.model.forward

    def timed_forward(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            forward_s.append(time.perf_counter() - began)

    rt.loaded.model.forward = timed_forward
    models = [rt.open_session("Warn me about obstacles.") for _ in range(sessions)]
    frames = [
        [_image(s * 100 + t % 7, SIZES[s % len(SIZES)]) for t in range(7)] for s in range(sessions)
    ]
    lanes = [Lane() for _ in range(sessions)]
    lock = threading.Lock()
    round_marks: dict[int, list[float]] = {}  # per round: first step began, last done

    def step(s: int, t: int, due: float) -> Action:
        began = time.perf_counter()
        frame = Frame(frames[s][t % 7], t, t * 1000, time.monotonic())
        action = models[s].step(TickInput(tick_s=float(t), frame=frame))
        done = time.perf_counter()
        lane = lanes[s]
        with lock:
            lane.began.append((began - due) * 1000)
            lane.done.append((done - due) * 1000)
            lane.waits.append(action.model_wait_ms)
            lane.batches.append(action.batch_size)
            marks = round_marks.setdefault(t, [began, done])
            marks[0], marks[1] = min(marks[0], began), max(marks[1], done)
        return action

    # One warm-up round, not counted.
    for f in [rt.executor.submit(models[s].step, TickInput(0.0, None)) for s in range(sessions)]:
        f.result()
    forward_s.clear()
    start = time.perf_counter() + 0.2
    for t in range(1, seconds + 1):
        for s in range(sessions):
            due = start + (t - 1) + s * 0.002  # due together, a few ms apart
            time.sleep(max(0.0, due - time.perf_counter()))
            lane = lanes[s]
            if lane.running is not None and not lane.running.done():
                lane.lost += 1  # still busy with its last tick: this one coalesces
                continue
            lane.running = rt.executor.submit(step, s, t, due)
    for lane in lanes:
        if lane.running is not None:
            lane.running.result()
    spans = [(b - a) * 1000 for a, b in round_marks.values()]
    for m in models:
        m.close()
    rt.close()
    return {
        "lanes": lanes,
        "spans": spans,
        "forward_ms": sum(forward_s) * 1000,
        "forwards": dict(rt.batcher.forwards) if rt.batcher else {},
    }


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))] if xs else float("nan")


def report(name: str, result: dict[str, object], seconds: int) -> float:
    lanes: list[Lane] = result["lanes"]  # type: ignore[assignment]
    spans: list[float] = result["spans"]  # type: ignore[assignment]
    busy = float(result["forward_ms"]) / seconds  # type: ignore[arg-type]
    print(
        f"\n{name}: model forwards {busy:.0f} ms per second; a round (first step began → "
        f"last action back) p50 {pct(spans, 50):.0f} ms, {sum(spans) / seconds:.0f} ms per second"
    )
    if result["forwards"]:
        print(f"  forwards by rows: {result['forwards']}")
    for i, lane in enumerate(lanes):
        print(
            f"  session {i} ({SIZES[i % len(SIZES)][0]}×{SIZES[i % len(SIZES)][1]}): "
            f"ticks {len(lane.done)}, lost {lane.lost}; slip to start p50 {pct(lane.began, 50):.1f} / "
            f"max {max(lane.began):.1f} ms; to action p50 {pct(lane.done, 50):.1f} / "
            f"p95 {pct(lane.done, 95):.1f} ms; model wait p50 {pct(lane.waits, 50):.1f} ms; "
            f"batch {statistics.mode(lane.batches)}"
        )
    return busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--window-ms", type=float, default=5.0, help="the batched run's window")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_tiny_qwen(Path(tmp) / "tiny")
        seq = run(folder, window_ms=0.0, seconds=args.seconds, sessions=args.sessions)
        bat = run(folder, window_ms=args.window_ms, seconds=args.seconds, sessions=args.sessions)
    busy_seq = report("sequential (batch_window_ms 0)", seq, args.seconds)
    busy_bat = report(f"batched (batch_window_ms {args.window_ms:g})", bat, args.seconds)
    lanes_seq: list[Lane] = seq["lanes"]  # type: ignore[assignment]
    lanes_bat: list[Lane] = bat["lanes"]  # type: ignore[assignment]
    done_seq = [x for lane in lanes_seq for x in lane.done]
    done_bat = [x for lane in lanes_bat for x in lane.done]
    print(
        f"\nratios batched/sequential: model time per second {busy_bat / busy_seq:.2f}; "
        f"tick slip to action p50 {pct(done_bat, 50) / pct(done_seq, 50):.2f}, "
        f"p95 {pct(done_bat, 95) / pct(done_seq, 95):.2f}; "
        f"ticks lost {sum(lane.lost for lane in lanes_bat)} vs {sum(lane.lost for lane in lanes_seq)}"
    )


if __name__ == "__main__":
    main()
