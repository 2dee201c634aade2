"""Soak (issue 14, item 3): an hour of one session on a fast clock, then sessions
opened and closed over and over; the process's memory, threads, fds and KV bytes
must stay flat after warm-up.

The server is built in this process exactly as ``murmur serve`` builds it
(``build_app`` from settings: the model, Piper or the instant TTS, no ASR) and
sessions go through its ``SessionRegistry``, as the gRPC servicer hands them over;
only the transport is left out. Everything runs on the session harness's
``VirtualTimeLoop`` (tests/session_harness.py): timers jump to the next deadline,
while model steps and TTS run for real in their threads and hold the clock still.
An hour of 1 fps session time therefore takes as long as 3,600 model steps take
on this machine, not an hour. The client side keeps counts only, never events.

Phases: *session*, one session of ``--minutes`` of session time with a JPEG frame
every second (24 sizes, so a frame's vision tokens vary), a typed question every
37 s (which the scripted model answers) and a playback report for every utterance;
samples at the end of warm-up
(``--warmup`` s), at minute 5 and at the last minute. *open/close*: ``--cycles``
sessions one after another, each ``--cycle-s`` seconds long; samples after the
first ``--cycle-warmup`` cycles and after the last. A sample is taken with no
session step in flight, after a ``gc.collect``; KV bytes are the runtime's
``murmur_kv_cache_bytes`` gauge. Exit status 1 when RSS at the end of a phase is more
than ``--tolerance`` (5 %) above its reference sample (minute 5; the cycle-warmup
sample), KV bytes or fds grew, threads grew by more than two (pools start threads
as work first needs them), or KV bytes are held with no session open.

    python benchmarks/soak.py --model scripted            # ~10 s (--tts piper: ~30 s)
    python benchmarks/soak.py --model tiny                 # tiny Qwen3-VL, ~5 min on 2 cores
    python benchmarks/soak.py --model tiny --minutes 10 --cycles 20
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import io
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from PIL import Image, ImageDraw

from server.app import App, Overrides, build_app
from server.config import Settings
from server.events import (
    AudioOut,
    ClientEvent,
    FrameIn,
    Notice,
    PlaybackReport,
    ServerEvent,
    SessionStart,
    Speech,
    TextIn,
    VideoEncoding,
)
from server.session.registry import SessionRegistry
from server.telemetry.metrics import REGISTRY
from tests.session_harness import VirtualTimeLoop

__all__ = ["Sample", "SoakOptions", "SoakResult", "run_soak"]

_THREAD_SLACK = 2


@dataclass(frozen=True, slots=True)
class Sample:
    label: str
    at_s: float  # virtual seconds into the phase
    wall_s: float  # real seconds since the soak began
    rss_mb: float
    threads: int
    fds: int
    kv_bytes: int


@dataclass(frozen=True)
class SoakOptions:
    model: str = "scripted"  # "scripted" or "tiny"
    minutes: float = 60.0  # session time of the long session
    warmup_s: float = 120.0
    mid_minute: float = 5.0
    ask_every_s: float = 37.0
    cycles: int = 30
    cycle_s: float = 8.0
    cycle_warmup: int = 5
    tts: str = "instant"  # "instant" (tests/fakes) or "piper"
    max_new_tokens: int = 12  # the tiny model says nonsense; 12 tokens keep ticks cheap
    tolerance: float = 0.05
    model_dir: Path | None = None  # a built tiny Qwen3-VL (else one is built in a temp dir)


@dataclass
class SoakResult:
    samples: list[Sample] = field(default_factory=list)
    sent: Counter[str] = field(default_factory=Counter)  # server events, by type
    failures: list[str] = field(default_factory=list)

    def by_label(self) -> dict[str, Sample]:
        return {s.label: s for s in self.samples}


def _jpegs() -> list[bytes]:
    """24 frames of different sizes (so vision token counts vary) and shades."""
    out = []
    for i in range(24):
        w, h = 320 + (i * 37 % 13) * 16, 240 + (i * 11 % 7) * 16
        img = Image.new("RGB", (w, h), (40 + i * 8, 90, 170 - i * 5))
        ImageDraw.Draw(img).rectangle((30 + i * 5, 40, 120 + i * 5, h - 20), fill=(200, 170, 80))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=75)
        out.append(buf.getvalue())
    return out


class SoakLink:
    """The transport's side of one session (``SessionLink``): a frame every second, a
    question now and then, a playback report for each utterance's last packet, then a
    half-close at ``end_s``. Keeps counts of what the server sent, nothing else."""

    def __init__(
        self, jpegs: list[bytes], end_s: float, ask_every_s: float, sent: Counter[str]
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        self._jpegs = jpegs
        self._end = end_s
        self._ask_every = ask_every_s
        self._seq = 0
        self._reports: list[PlaybackReport] = []
        self._wake = asyncio.Event()
        self._played: dict[str, int] = {}
        self.sent = sent
        self.examples: list[str] = []

    def now(self) -> float:
        return self._loop.time() - self._t0

    async def recv(self) -> ClientEvent | None:
        while not self._reports:
            due = float(self._seq)
            if due >= self._end:
                due = self._end
            wait = due - self.now()
            if wait <= 0:
                if due >= self._end:
                    return None
                return self._next()
            self._wake.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass
        return self._reports.pop(0)

    def _next(self) -> ClientEvent:
        seq = self._seq
        self._seq += 1
        if seq and self._ask_every and seq % int(self._ask_every) == 0:
            return TextIn("what is in front of me?")
        data = self._jpegs[seq % len(self._jpegs)]
        return FrameIn(seq, int(seq * 1000), VideoEncoding.JPEG, data)

    async def send(self, event: ServerEvent) -> None:
        self.sent[type(event).__name__] += 1
        if isinstance(event, Speech | Notice) and len(self.examples) < 6:
            self.examples.append(repr(event)[:160])
        if isinstance(event, AudioOut):
            self._played[event.utterance_id] = self._played.get(event.utterance_id, 0) + 1
            if event.last:
                packets = self._played.pop(event.utterance_id)
                self._reports.append(PlaybackReport(event.utterance_id, packets * 20, True))
                self._wake.set()


def _probe(label: str, at_s: float, t0: float) -> Sample:
    gc.collect()
    rss = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return Sample(
        label,
        at_s,
        time.perf_counter() - t0,
        rss,
        len(os.listdir("/proc/self/task")),
        len(os.listdir("/proc/self/fd")),
        int(REGISTRY.get_sample_value("murmur_kv_cache_bytes") or 0),
    )


def _settings(options: SoakOptions, model_spec: str) -> Settings:
    s = Settings().with_overrides(
        "model", model=model_spec, device="cpu", max_new_tokens=options.max_new_tokens
    )
    s = s.with_overrides("voice", asr="none", tts=("piper",))
    return s.with_overrides("server", max_sessions=1000)


def _build(options: SoakOptions, model_spec: str) -> App:
    tts = None
    if options.tts == "instant":
        from tests.fakes import InstantTTS

        tts = InstantTTS(24000)
    return build_app(_settings(options, model_spec), Overrides(tts=tts))


async def _session(
    registry: SessionRegistry, jpegs: list[bytes], seconds: float, options: SoakOptions,
    sent: Counter[str],
) -> SoakLink:  # fmt: skip
    link = SoakLink(jpegs, seconds, options.ask_every_s, sent)
    start = SessionStart(want_trace=True, client_name="soak")
    await registry.connect(link, start, "")
    if os.environ.get("SOAK_DEBUG"):
        print("\n".join(link.examples))
    return link


async def _soak(app: App, options: SoakOptions, result: SoakResult, t0: float) -> None:
    loop = asyncio.get_running_loop()
    runtime = app.services.runtime
    await loop.run_in_executor(runtime.executor, runtime.warm_up)
    services = dataclasses.replace(app.services, clock=loop.time, sleep=asyncio.sleep)
    registry = SessionRegistry(services)
    jpegs = _jpegs()
    minutes = options.minutes
    # The long session: samples at warm-up, minute 5 and the last minute, each taken
    # when no step is in flight (the harness's clock stands still while one runs).
    points = [
        ("warm-up", options.warmup_s),
        (f"minute {options.mid_minute:g}", options.mid_minute * 60),
        (f"minute {minutes:g}", minutes * 60 - 0.5),
    ]
    result.samples.append(_probe("server started", 0.0, t0))
    task = asyncio.create_task(_session(registry, jpegs, minutes * 60, options, result.sent))
    start = loop.time()
    for label, at in points:
        await asyncio.sleep(max(0.0, start + at - loop.time()))
        result.samples.append(_probe(label, at, t0))
        print(f"  {label}: {time.perf_counter() - t0:.0f} s of wall time", flush=True)
    await task
    await asyncio.sleep(30.0)  # let the closed session's work settle
    result.samples.append(_probe("session closed", minutes * 60 + 30, t0))
    for n in range(1, options.cycles + 1):
        await _session(registry, jpegs, options.cycle_s, options, result.sent)
        if n == options.cycle_warmup or n == options.cycles:
            await asyncio.sleep(1.0)
            result.samples.append(_probe(f"after {n} open/close", n, t0))
    await registry.aclose()


def _check(result: SoakResult, options: SoakOptions) -> None:
    s = result.by_label()
    mid = s[f"minute {options.mid_minute:g}"]
    end = s[f"minute {options.minutes:g}"]
    first = s[f"after {options.cycle_warmup} open/close"]
    last = s[f"after {options.cycles} open/close"]
    for phase, a, b in (("session", mid, end), ("open/close", first, last)):
        ratio = b.rss_mb / a.rss_mb
        if ratio > 1 + options.tolerance:
            result.failures.append(
                f"{phase}: RSS {a.rss_mb:.0f} → {b.rss_mb:.0f} MB ({ratio:.3f}) "
                f"over {1 + options.tolerance:.2f}"
            )
        if b.kv_bytes > a.kv_bytes:
            result.failures.append(f"{phase}: KV bytes {a.kv_bytes} → {b.kv_bytes}")
        # A pool starts its threads as work first needs them: two more is not a leak.
        if b.threads > a.threads + _THREAD_SLACK or b.fds > a.fds:
            result.failures.append(
                f"{phase}: threads {a.threads} → {b.threads}, fds {a.fds} → {b.fds}"
            )
    if last.kv_bytes != s["server started"].kv_bytes:
        result.failures.append(f"{last.kv_bytes} KV bytes held with no session open")


def run_soak(options: SoakOptions) -> SoakResult:
    """Build the server, run both phases on the fast clock, and check the samples."""
    result = SoakResult()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        spec = _model_spec(options, Path(tmp))
        app = _build(options, spec)
        loop = VirtualTimeLoop()
        try:
            loop.run_until_complete(_soak(app, options, result, t0))
        finally:
            loop.run_until_complete(app.aclose())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
    _check(result, options)
    return result


def _model_spec(options: SoakOptions, tmp: Path) -> str:
    if options.model == "scripted":
        script = tmp / "soak.jsonl"
        lines = [{"at": t, "output": "</response> Careful, a step down ahead of you."}
                 for t in range(5, int(options.minutes * 60) + 1, 29)]  # fmt: skip
        lines += [{"at": 0, "query": "front", "output": "</response> A corridor, clear."}] * 200
        script.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
        return f"scripted:{script}"
    if options.model_dir is not None:
        return str(options.model_dir)
    from tests.tiny_qwen import build_tiny_qwen

    return str(build_tiny_qwen(tmp / "tiny-qwen3-vl"))


def print_table(result: SoakResult, print_: Callable[[str], None] = print) -> None:
    print_(f"{'sample':<22}{'virtual s':>10}{'wall s':>8}{'RSS MB':>9}{'threads':>8}{'fds':>5}"
           f"{'KV MB':>8}")  # fmt: skip
    for s in result.samples:
        print_(f"{s.label:<22}{s.at_s:>10.0f}{s.wall_s:>8.0f}{s.rss_mb:>9.1f}{s.threads:>8}"
               f"{s.fds:>5}{s.kv_bytes / 2**20:>8.1f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", choices=("scripted", "tiny"), default="scripted")
    ap.add_argument("--minutes", type=float, default=60.0, help="session time of the long session")
    ap.add_argument("--warmup", type=float, default=120.0, help="warm-up, session seconds")
    ap.add_argument("--cycles", type=int, default=30, help="sessions opened and closed")
    ap.add_argument("--cycle-warmup", type=int, default=5, help="cycles before the reference")
    ap.add_argument("--cycle-s", type=float, default=8.0, help="session seconds per cycle")
    ap.add_argument("--tts", choices=("instant", "piper"), default="instant")
    ap.add_argument("--max-new-tokens", type=int, default=12)
    ap.add_argument("--tolerance", type=float, default=0.05, help="RSS growth allowed")
    ap.add_argument("--model-dir", type=Path, help="a tiny Qwen3-VL folder already built")
    args = ap.parse_args()
    options = SoakOptions(
        model=args.model,
        minutes=args.minutes,
        warmup_s=args.warmup,
        mid_minute=min(5.0, args.minutes / 2),
        cycles=args.cycles,
        cycle_s=args.cycle_s,
        cycle_warmup=args.cycle_warmup,
        tts=args.tts,
        max_new_tokens=args.max_new_tokens,
        tolerance=args.tolerance,
        model_dir=args.model_dir,
    )
    print(f"soak: model {args.model}, TTS {args.tts}, {args.minutes:g} min on the fast clock, "
          f"then {args.cycles} sessions of {args.cycle_s:g} s opened and closed")  # fmt: skip
    result = run_soak(options)
    print_table(result)
    s = result.by_label()
    mid, end = s[f"minute {options.mid_minute:g}"], s[f"minute {options.minutes:g}"]
    first = s[f"after {options.cycle_warmup} open/close"]
    last = s[f"after {options.cycles} open/close"]
    print(
        f"RSS minute {options.minutes:g} / minute {options.mid_minute:g}: "
        f"{end.rss_mb / mid.rss_mb:.3f}; after {options.cycles} / after {options.cycle_warmup} "
        f"open/close: {last.rss_mb / first.rss_mb:.3f} (limit {1 + options.tolerance:.2f})"
    )
    print("server events: " + ", ".join(f"{k} {v}" for k, v in result.sent.most_common()))
    for f in result.failures:
        print(f"FAIL {f}")
    sys.exit(1 if result.failures else 0)


if __name__ == "__main__":
    main()
