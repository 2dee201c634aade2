"""The HTTP path's own cost (issue 15): what a Murmur frontend spends per tick in front of
a vLLM-style model server, with frame references on and off.

Against ``FakeVLLM`` (tests/fake_vllm.py: an OpenAI-compatible server on loopback that
answers at once and keeps frames sent with a uuid), one session steps through a
``--ticks``-long chunk of 640×480 frames that all differ. Per tick it measures the
CPU the step costs the *calling* thread (``time.thread_time``: JSON, JPEG and base64
encoding, the HTTP client; the fake server's thread is not counted), the request's
size, and the size of the new frame in it. Printed, with ``--ticks 100``:

- frontend CPU per tick with frame references (target ≤ 5 ms), and without them;
- tick 100 / tick 5: how the cost grows as the chunk fills (target ≤ 1.5× even
  without references: each frame is JPEG-encoded once, however often it is resent);
- bytes per frame against what the model's pixel budget needs: the new frame's
  JPEG, its pixel count against ``image_max_pixels`` (never more pixels than the
  model will look at).

One run; a shared machine's numbers are noisy, the ratios less so.

    python benchmarks/bench_http_path.py [--ticks 100]
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image
from street import street_view  # benchmarks/street.py, beside this file

from server.runtime.base import Frame, TickInput
from server.runtime.limits import MAX_PIXELS
from tests.fake_vllm import INSTRUCTION, image_parts, runtime
from tests.fakes import FakeVLLM


def _frame(n: int, rng: np.random.Generator) -> TickInput:
    """A walk-like view that moves every frame (``street_view``), with a camera's grain."""
    image = street_view(n, rng, grain=4.0)
    return TickInput(tick_s=float(n), frame=Frame(image, n, n * 1000, 0.0))


def _new_frame_bytes(body: dict) -> tuple[int, int]:
    """The newest frame sent in full: its JPEG bytes and its pixel count."""
    sent = [p for p in image_parts(body) if p.get("image_url")]
    if not sent:
        return 0, 0
    url = sent[-1]["image_url"]["url"]
    jpeg = base64.b64decode(url.split(",", 1)[1])
    w, h = Image.open(io.BytesIO(jpeg)).size
    return len(jpeg), w * h


def run(ticks: int, refs: bool) -> dict[str, list[float]]:
    server = FakeVLLM()
    rng = np.random.default_rng(0)
    inputs = [_frame(n, rng) for n in range(1, ticks + 1)]
    rt = runtime(server, stream=False, frame_refs=refs, chunk_ticks=ticks + 1)
    out: dict[str, list[float]] = {"cpu_ms": [], "request_kb": [], "jpeg_kb": [], "pixels": []}
    try:
        session = rt.open_session(INSTRUCTION)
        for tick in inputs:
            t0 = time.thread_time()
            session.step(tick)
            out["cpu_ms"].append((time.thread_time() - t0) * 1000)
            raw = server.requests[-1]
            jpeg, pixels = _new_frame_bytes(server.bodies()[-1])
            out["request_kb"].append(len(raw) / 1024)
            out["jpeg_kb"].append(jpeg / 1024)
            out["pixels"].append(pixels)
    finally:
        rt.close()
        server.close()
    return out


def _around(values: list[float], at: int, half: int = 5) -> float:
    """The median of the ticks around tick ``at`` (1-based)."""
    lo, hi = max(0, at - 1 - half), min(len(values), at + half)
    return statistics.median(values[lo:hi])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ticks", type=int, default=100, help="ticks in the chunk (default 100)")
    args = ap.parse_args()
    n = args.ticks
    runs = {refs: run(n, refs) for refs in (True, False)}
    print(f"HTTP path, one session, {n} ticks of 640×480 frames, FakeVLLM answering at once")
    print(f"{'frame refs':<12}{'CPU/tick p50':>13}{'p95':>8}{'tick 5':>9}{f'tick {n}':>10}"
          f"{'ratio':>7}{'request at tick ' + str(n):>24}")  # fmt: skip
    ok = True
    for refs, r in runs.items():
        cpu = r["cpu_ms"]
        p95 = statistics.quantiles(cpu, n=20)[-1]
        early, late = _around(cpu, 5), _around(cpu, n)
        ratio = late / early
        print(f"{'on' if refs else 'off':<12}{statistics.median(cpu):>10.2f} ms{p95:>8.2f}"
              f"{early:>9.2f}{late:>10.2f}{ratio:>7.2f}{r['request_kb'][-1]:>21.0f} KB")  # fmt: skip
        ok &= ratio <= 1.5 and (not refs or statistics.median(cpu) <= 5.0)
    jpeg, pixels = runs[True]["jpeg_kb"], runs[True]["pixels"]
    print(f"new frame in each request: {statistics.median(jpeg):.0f} KB JPEG, "
          f"{int(statistics.median(pixels))} pixels (model budget {MAX_PIXELS}: "
          f"{'within' if max(pixels) <= MAX_PIXELS else 'OVER'})")  # fmt: skip
    ok &= max(pixels) <= MAX_PIXELS
    print("targets: CPU/tick ≤ 5 ms with refs; tick N / tick 5 ≤ 1.5 both ways; "
          f"frames within the pixel budget — {'met' if ok else 'NOT met'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
