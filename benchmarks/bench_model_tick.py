"""Per-tick model cost of the in-process runtime vs context length.

Default (CPU, a tiny random Qwen3-VL loaded through ``TransformersRuntime.load``):
model time per tick at tick 5 and at tick 100 with 640×480 frames, and the time
to recompute the whole 100-tick conversation from scratch instead. Budgets
(shared/DESIGN.md §7): tick 100 ≤ 2× tick 5, and ≥ 20× cheaper than recompute.

    python benchmarks/bench_model_tick.py

With ``--shape 8b`` (or ``--hidden/--layers``) it builds a Qwen3-VL-8B-shaped
model with random weights directly on the device — same compute and memory cost
as the real one, no download — and prints silent-tick p50/p95, time to the first
reply token and peak GPU memory at the end of a chunk:

    python benchmarks/bench_model_tick.py --device cuda --dtype bfloat16 --shape 8b
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from PIL import Image

from server.runtime.base import Frame, TickInput
from server.runtime.transformers import (
    TransformersOptions,
    TransformersRuntime,
    TransformersSession,
    attention,
)
from server.runtime.transformers.loading import LoadedModel, image_only_processor, resolve_dtype
from tests.tiny_qwen import (
    TinyShape,
    build_tiny_qwen,
    reference_logits,
    tiny_config,
    write_processor_files,
)


def frames(n: int, size: tuple[int, int]) -> list[Image.Image]:
    return [Image.effect_noise(size, 30 + i % 7).convert("RGB") for i in range(n)]


def tick(t: int, image: Image.Image, query: str | None = None) -> TickInput:
    return TickInput(
        tick_s=float(t), frame=Frame(image, t, t * 1000, time.monotonic()), user_query=query
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_step(session: TransformersSession, t: TickInput, device: torch.device) -> float:
    sync(device)
    started = time.perf_counter()
    session.step(t)
    sync(device)
    return (time.perf_counter() - started) * 1000


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def build_runtime(args: argparse.Namespace, work: Path) -> TransformersRuntime:
    options = TransformersOptions(
        speak_margin=1e9,
        chunk_ticks=args.ticks + args.pairs + 10,  # no rollover before the last reply
        background_summary=False,
        max_new_tokens=args.reply_tokens,
    )
    if args.shape == "tiny" and args.hidden is None:
        folder = build_tiny_qwen(work / "tiny")
        return TransformersRuntime.load(
            str(folder), device=args.device, dtype=args.dtype, options=options
        )
    # A large random model is built in place on the device: writing 17 GB of random
    # weights to disk only to read them back would measure the disk.
    shape = TinyShape.eight_b() if args.shape == "8b" else TinyShape()
    if args.hidden is not None:
        heads = max(1, args.hidden // 128)
        shape = dataclasses.replace(
            shape,
            hidden=args.hidden,
            heads=heads,
            kv_heads=max(1, heads // 4),
            head_dim=128,
            intermediate=args.hidden * 3,
        )
    if args.layers is not None:
        shape = dataclasses.replace(shape, layers=args.layers)
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

    folder = write_processor_files(work / "proc")
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    dtype = resolve_dtype(args.dtype, device)
    tiny_config(shape).save_pretrained(folder)
    try:
        processor = AutoProcessor.from_pretrained(folder)
    except ImportError:
        processor = image_only_processor(str(folder))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    with torch.device(device):
        model = Qwen3VLForConditionalGeneration(tiny_config(shape))
    torch.set_default_dtype(previous)
    model.eval()
    loaded = LoadedModel(
        model=model,
        processor=processor,
        device=device,
        dtype=dtype,
        source=f"random:{shape.layers}×{shape.hidden}",
    )
    return TransformersRuntime(loaded, options)


class AttentionClock:
    """Time spent in the text decoder's cached attention (CPU only: on a GPU each
    call would need a synchronisation that changes what is measured)."""

    def __init__(self) -> None:
        self.ms = 0.0

    def install(self) -> None:
        from transformers import AttentionInterface

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return attention.cached_attention(*args, **kwargs)
            finally:
                self.ms += (time.perf_counter() - started) * 1000

        AttentionInterface.register(attention.CACHED_ATTENTION, timed)

    def take(self) -> float:
        ms, self.ms = self.ms, 0.0
        return ms


def choose_attention(runtime: TransformersRuntime, choice: str) -> None:
    if choice == "folded":
        attention.SPLIT_DEVICES.clear()
    elif choice == "sdpa":
        runtime.loaded.model.config.get_text_config()._attn_implementation = "sdpa"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--shape", choices=("tiny", "8b"), default="tiny")
    ap.add_argument("--hidden", type=int, default=None, help="text hidden size (custom shape)")
    ap.add_argument("--layers", type=int, default=None, help="text layers (custom shape)")
    ap.add_argument("--ticks", type=int, default=100)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--reply-tokens", type=int, default=16)
    ap.add_argument(
        "--pairs", type=int, default=10, help="interleaved tick-5/tick-N pairs (at least 1)"
    )
    ap.add_argument(
        "--attention",
        choices=("auto", "folded", "sdpa"),
        default="auto",
        help="auto: the runtime's choice (split on CPU, folded elsewhere); "
        "sdpa: transformers' own, which copies the cache per layer (for comparison)",
    )
    ap.add_argument("--no-recompute", action="store_true", help="skip the full recompute")
    args = ap.parse_args()
    if args.pairs < 1 or args.ticks < args.pairs + 5:
        ap.error("--pairs must be at least 1 and --ticks at least pairs + 5")
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        runtime = build_runtime(args, Path(tmp))
        device = runtime.loaded.device
        print(
            f"model {runtime.name} on {device} ({runtime.loaded.dtype}), "
            f"built in {time.perf_counter() - t0:.1f} s"
        )
        choose_attention(runtime, args.attention)
        clock = AttentionClock() if device.type == "cpu" and args.attention != "sdpa" else None
        if clock:
            clock.install()
        runtime.warm_up()
        images = frames(8, (args.width, args.height))
        session = runtime.open_session("Warn me about obstacles.")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        # 1. One session ticking up to just before the measured window.
        pairs = args.pairs
        first_paired = args.ticks - pairs // 2 + 1
        times: list[float] = []
        new_tokens: list[int] = []
        for t in range(1, first_paired):
            times.append(timed_step(session, tick(t, images[t % len(images)]), device))
            new_tokens.append(session.debug_state().last_step.new_tokens)
        # 2. The budget ratio, interleaved: each long-session tick around tick N is
        # paired with tick 5 of a fresh short session run just before it, so a busy
        # spell on this shared machine slows both sides of the ratio, not one.
        short_opts = dataclasses.replace(runtime.options, chunk_ticks=8)
        early: list[float] = []
        late: list[float] = []
        attn_early: list[float] = []
        attn_late: list[float] = []
        for t in range(first_paired, first_paired + pairs):
            short = runtime.open_session("Warn me about obstacles.", options=short_opts)
            for s in range(1, 6):
                if clock:
                    clock.take()
                ms = timed_step(short, tick(s, images[s % len(images)]), device)
            early.append(ms)
            attn_early.append(clock.take() if clock else 0.0)
            short.close()
            late.append(timed_step(session, tick(t, images[t % len(images)]), device))
            attn_late.append(clock.take() if clock else 0.0)
            times.append(late[-1])
        last = first_paired + pairs - 1
        # Every measured tick in the first chunk: a rollover would put cheap ticks in it.
        state = session.debug_state()
        if state.conversation.chunk_ticks != last or state.conversation.rollover_due:
            raise SystemExit("the chunk rolled over inside the measured window")
        t5, t_end = statistics.median(early), statistics.median(late)
        print(
            f"tokens per silent tick: {statistics.median(new_tokens):.0f}; "
            f"cached at tick {last}: {state.cached_tokens} of {state.capacity}"
        )
        print(
            f"one session, ticks in order: tick 5 {statistics.median(times[2:7]):.1f} ms, "
            f"tick {args.ticks} {statistics.median(times[args.ticks - 3 : args.ticks + 2]):.1f} ms"
        )
        print(
            f"model time per tick ({pairs} interleaved pairs): tick 5 {t5:.1f} ms, "
            f"ticks {first_paired}–{last} {t_end:.1f} ms "
            f"(ratio {t_end / t5:.2f}, budget ≤ 2.00)"
        )
        if clock:
            a5, a_end = statistics.median(attn_early), statistics.median(attn_late)
            rest5 = statistics.median(e - a for e, a in zip(early, attn_early, strict=True))
            rest_end = statistics.median(e - a for e, a in zip(late, attn_late, strict=True))
            print(
                f"  of which text attention: {a5:.1f} → {a_end:.1f} ms; "
                f"everything else: {rest5:.1f} → {rest_end:.1f} ms"
            )
        print(f"silent tick p50 {pct(times, 50):.1f} ms, p95 {pct(times, 95):.1f} ms")

        if not args.no_recompute:
            processor = runtime.loaded.processor
            processor.image_processor.size = dict(runtime.forward.image_size)
            messages = list(state.messages[:-1])
            sync(device)
            started = time.perf_counter()
            reference_logits(
                runtime.loaded.model,
                processor,
                messages,
                list(state.decision_prefix_ids),
                runtime.forward.lock,
            )
            sync(device)
            full = (time.perf_counter() - started) * 1000
            print(
                f"full recompute at tick {last}: {full:.0f} ms — incremental (ticks "
                f"{first_paired}–{last}) is "
                f"{full / t_end:.0f}× cheaper (budget ≥ 20×)"
            )

        # Time to the first reply token: force a reply on a few ticks. The peak of GPU
        # memory is taken over these, at the chunk's end, the short sessions gone.
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        session.options = dataclasses.replace(session.options, speak_margin=-1e9)
        firsts = []
        stages: dict[str, list[float]] = {}
        for t in range(last + 1, last + 4):
            action = session.step(tick(t, images[t % len(images)]))
            for name, ms in action.stages:
                stages.setdefault(name, []).append(ms)
            first_token_ms = session.debug_state().last_step.first_token_ms
            if first_token_ms is not None:
                firsts.append(first_token_ms)
        print(
            f"time to first reply token: p50 {statistics.median(firsts):.1f} ms "
            f"({args.reply_tokens} tokens max per reply); stages of a reply tick: "
            + ", ".join(f"{k} {statistics.median(v):.1f} ms" for k, v in stages.items())
        )
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) / 2**30
            print(
                f"peak GPU memory at chunk end: {peak:.2f} GiB "
                f"(KV {session.debug_state().kv_bytes / 2**30:.2f} GiB preallocated)"
            )
        session.close()
        runtime.close()


if __name__ == "__main__":
    main()
