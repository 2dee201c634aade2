"""The bridge's playback sink in real time: how soon the first sample of an alert leaves
the sink after its first ``AudioOut`` arrived, and how soon output stops after a
``StopSpeaking`` (issue 12: ≤ 150 ms and ≤ 40 ms).

**Over a scripted server** (the numbers that count): ``murmur serve --model
scripted:…`` in a subprocess (``serving.py``; piper TTS, loopback, plaintext), the
bridge's real ``BridgeSession`` over a ``BridgeLink`` in blind mode, with a 2 fps
source, and a ``PlaybackSink`` on a paced output on the real clock that stamps every
block it pulls (a recording sink). The script speaks a long narration, then two
seconds later an alert that cuts it: the server's ``StopSpeaking`` for the narration
and the alert's speech. Measured: an alert's first ``AudioOut`` packet arriving (the
session's observer) → its first sample leaving the sink (``PlaybackSink.spans``; the
block's pull time plus the sample's place in it); ``StopSpeaking`` arriving → the last
sample of the cut utterance out. A sound card adds its own buffer (about one block
with sounddevice's ``latency="low"``) on top.

**In process** (kept for comparison, no network and no server): Opus packets every
20 ms straight into the session's event router, a 0.5 s utterance each, every other
one cut after 15 packets; also whether each ``PlaybackReport`` matches what was
written to the output.

No asserts: the targets are printed beside the numbers.

    python benchmarks/bench_playback.py --alerts 8 --runs 10 --jitter-ms 60
    python benchmarks/bench_playback.py --skip-server      # the in-process part only

On the 2-core dev box (load ~2-4, 60 ms jitter buffer), over the scripted server (8
alerts, 8 cuts): alert first AudioOut → first sample out p50 23 ms / p95 43 ms (the
server sends speech faster than real time, so the buffer fills at once); StopSpeaking →
last sample out p50 12 ms / p95 13 ms; no underruns. In process (20 utterances): first
sample p50 56 ms / p95 59 ms; stop p50 17 ms / p95 18 ms; |played_ms − written| p50
0.4 ms / p95 1.8 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proto"))

import numpy as np
from murmur.v1 import companion_pb2 as pb
from PIL import Image
from serving import start_scripted_server  # benchmarks/serving.py, beside this file

from mobile_bridge.client import BridgeSession, ServerEventRouter, SessionOptions
from mobile_bridge.clock import SystemClock
from mobile_bridge.connection import LinkOptions
from mobile_bridge.link import BridgeLink
from mobile_bridge.media import OpusPacketizer
from mobile_bridge.sinks.audio import AudioSink
from mobile_bridge.sinks.base import EventObserver
from mobile_bridge.sinks.outputs import PacedOutput
from mobile_bridge.sinks.playback import PlaybackOptions, PlaybackSink
from mobile_bridge.sources.base import GlassesSource, JpegFrame, SourceCapabilities

RATE = 24000
PACKET_S = 0.02
SILENT = 1e-4


class NoSource(GlassesSource):
    @property
    def capabilities(self) -> SourceCapabilities:
        return SourceCapabilities(speaker=True)

    async def frames(self):  # type: ignore[override]
        return
        yield JpegFrame(b"", 0)


class StampedOutput(PacedOutput):
    """Every block pulled, with the monotonic time it was pulled."""

    def __init__(self) -> None:
        super().__init__(RATE, 2, clock=SystemClock(), write=self._keep)
        self.blocks: list[tuple[float, np.ndarray]] = []

    def _keep(self, block: np.ndarray) -> None:
        self.blocks.append((time.monotonic(), block.copy()))

    def time_of(self, sample: int) -> float:
        """When sample ``sample`` of the output's timeline left the sink."""
        at, _ = self.blocks[sample // self.block_frames]
        return at + (sample % self.block_frames) / RATE

    def sounding(self, since: int) -> list[float]:
        """The times samples with sound left the sink, from block ``since`` on."""
        times: list[float] = []
        for at, block in self.blocks[since:]:
            idx = np.flatnonzero(np.abs(block).max(axis=1) > SILENT)
            times.extend(at + i / RATE for i in idx)
        return times


def tone_packets(n: int) -> list[bytes]:
    t = np.arange(n * RATE // 50) / RATE
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    return list(OpusPacketizer(RATE).packets(pcm))


async def trial(
    router: ServerEventRouter,
    out: StampedOutput,
    reports: list[pb.PlaybackReport],
    reported: asyncio.Event,
    uid: str,
    packets: list[bytes],
    stop_at: int | None,
) -> tuple[float, float | None, float]:
    """(first-sample latency, stop latency or None, |reported − written| ms)."""
    since = len(out.blocks)
    start = time.monotonic()
    first_at = stop_sent = 0.0
    for seq, data in enumerate(packets):
        await asyncio.sleep(max(0.0, start + seq * PACKET_S - time.monotonic()))
        if seq == stop_at:
            stop_sent = time.monotonic()
            router.handle(pb.ServerEvent(stop_speaking=pb.StopSpeaking(utterance_ids=[uid])))
            break
        if seq == 0:
            first_at = time.monotonic()
        last = seq == len(packets) - 1
        router.handle(
            pb.ServerEvent(audio_out=pb.AudioOut(utterance_id=uid, seq=seq, data=data, last=last))
        )
    while not any(r.utterance_id == uid for r in reports):
        reported.clear()
        await reported.wait()
    await asyncio.sleep(0.1)
    sounding = out.sounding(since)
    written_ms = (sounding[-1] - sounding[0]) * 1000 + 1000 / RATE
    [report] = [r for r in reports if r.utterance_id == uid]
    stop_ms = (sounding[-1] - stop_sent) * 1000 if stop_at is not None else None
    return (sounding[0] - first_at) * 1000, stop_ms, abs(report.played_ms - written_ms)


def _pcts(name: str, xs: list[float], target: str) -> None:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
    print(
        f"{name}: p50 {statistics.median(xs):.1f} ms, p95 {p95:.1f} ms, max {xs[-1]:.1f} ms {target}"
    )


async def in_process(runs: int, jitter_ms: int) -> None:
    out = StampedOutput()
    sink = PlaybackSink(out, PlaybackOptions(rate_hz=RATE, jitter_ms=jitter_ms))
    reports: list[pb.PlaybackReport] = []
    reported = asyncio.Event()

    def offer(event: pb.ClientEvent) -> None:
        reports.append(event.playback_report)
        reported.set()

    router = ServerEventRouter(NoSource(), sink, offer)
    packets = tone_packets(25)  # a 0.5 s utterance
    first, stops, errors = [], [], []
    for i in range(runs):
        f, _, e = await trial(router, out, reports, reported, f"full{i}", packets, None)
        first.append(f)
        errors.append(e)
        f, s, e = await trial(router, out, reports, reported, f"cut{i}", packets, 15)
        first.append(f)
        errors.append(e)
        assert s is not None
        stops.append(s)
    sink.finish_all()
    print(f"in process: {runs * 2} utterances, jitter {jitter_ms} ms, 20 ms blocks, paced output")
    _pcts("first AudioOut → first sample out", first, "(target ≤ 150)")
    _pcts("StopSpeaking → last sample out", stops, "(target ≤ 40)")
    _pcts("|PlaybackReport.played_ms − written|", errors, "(one block = 20)")
    print(f"underrun blocks {sink.stats.underrun_blocks}, bad packets {sink.stats.bad_packets}")


# ---------------------------------------------------------------------- over a server

NARRATION = (
    "</response> The street ahead is lined with small shops, a bakery with a green "
    "awning, a pharmacy and a bookshop with tables of paperbacks outside."
)
ALERTS = [  # distinct hazards: the same one again soon would not be repeated
    "Bike at 2 o'clock, stop.",
    "Car at 3 o'clock, stop.",
    "Scooter at 10 o'clock, stop.",
    "Dog at 1 o'clock, stop.",
    "Bus at 9 o'clock, stop.",
    "Truck at 11 o'clock, stop.",
    "Cyclist at 4 o'clock, stop.",
    "Pole at 12 o'clock, stop.",
    "Stairs at 12 o'clock, stop.",
    "Motorbike at 8 o'clock, stop.",
]
EVERY_S = 6.0  # a narration, then its alert two seconds later


class Walk(GlassesSource):
    """Frames at 2 fps for ``seconds``, then the end (the session lingers, then ends)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    @property
    def capabilities(self) -> SourceCapabilities:
        return SourceCapabilities(camera=True, speaker=True, max_fps=2.0)

    async def frames(self) -> AsyncIterator[JpegFrame]:  # type: ignore[override]
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < self.seconds:
            buf = io.BytesIO()
            Image.new("RGB", (160, 120), (40 + n % 100, 90, 150)).save(buf, "JPEG")
            yield JpegFrame(buf.getvalue(), int(time.time() * 1000))
            n += 1
            await asyncio.sleep(max(0.0, start + n * 0.5 - time.monotonic()))


class Arrivals(EventObserver):
    """When each utterance's first ``AudioOut`` and each ``StopSpeaking`` arrived."""

    def __init__(self) -> None:
        self.first_audio: dict[str, float] = {}
        self.kinds: dict[str, int] = {}
        self.stops: list[tuple[float, list[str]]] = []

    def received(self, event: pb.ServerEvent, at: float) -> None:
        which = event.WhichOneof("event")
        if which == "audio_out":
            self.first_audio.setdefault(event.audio_out.utterance_id, at)
        elif which == "speech":
            self.kinds[event.speech.utterance_id] = event.speech.kind
        elif which == "stop_speaking":
            self.stops.append((at, list(event.stop_speaking.utterance_ids)))


def write_script(path: Path, alerts: int) -> float:
    """The scripted walk; how long it lasts, in seconds."""
    lines = []
    for i in range(alerts):
        at = 2.0 + i * EVERY_S
        lines.append({"at": at, "output": NARRATION})
        lines.append({"at": at + 2.0, "output": f"</response> {ALERTS[i % len(ALERTS)]}"})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return 2.0 + alerts * EVERY_S


async def over_server(alerts: int, jitter_ms: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "alerts.jsonl"
        seconds = write_script(script, alerts)
        proc, address = start_scripted_server(str(script))
        try:
            out = StampedOutput()
            player = PlaybackSink(out, PlaybackOptions(rate_hz=RATE, jitter_ms=jitter_ms))
            arrivals = Arrivals()
            clock = SystemClock()
            session = BridgeSession(
                Walk(seconds),
                AudioSink(RATE, player=player),
                lambda start: BridgeLink(LinkOptions(target=address), start, clock=clock),
                SessionOptions(mode="blind", linger_s=3.0),
                observers=(arrivals,),
                say=lambda line: None,
                clock=clock,
            )
            await session.run()
        finally:
            proc.terminate()
            proc.wait(10)
    first, stops, over_already = [], [], 0
    for uid, arrived in arrivals.first_audio.items():
        span = player.spans.get(uid)
        if arrivals.kinds.get(uid) == pb.SPEECH_KIND_ALERT and span is not None:
            first.append((out.time_of(span[0]) - arrived) * 1000)
    for at, uids in arrivals.stops:
        for uid in uids:
            if (span := player.spans.get(uid)) is None:
                continue
            end = out.time_of(span[1] - 1) + 1 / RATE
            if end < at:
                over_already += 1  # it had played out: nothing left to cut
            else:
                stops.append((end - at) * 1000)
    kinds = [pb.SpeechKind.Name(k) for k in arrivals.kinds.values()]
    print(
        f"over a scripted server: {alerts} narrations, each cut by an alert; "
        f"utterances {len(kinds)} ({kinds.count('SPEECH_KIND_ALERT')} alerts), "
        f"StopSpeaking {len(arrivals.stops)} ({over_already} after the end), "
        f"jitter {jitter_ms} ms, paced output"
    )
    if first:
        _pcts("alert: first AudioOut → first sample out", first, "(target ≤ 150)")
    if stops:
        _pcts("StopSpeaking → last sample out", stops, "(target ≤ 40)")
    p = player.stats
    print(f"underrun blocks {p.underrun_blocks}, late packets {p.late_packets}, cues {p.cues}")


async def main(alerts: int, runs: int, jitter_ms: int, skip_server: bool) -> None:
    if not skip_server:
        await over_server(alerts, jitter_ms)
    await in_process(runs, jitter_ms)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--alerts", type=int, default=8, help="narrations cut by an alert")
    ap.add_argument("--runs", type=int, default=10, help="in-process utterance pairs")
    ap.add_argument("--jitter-ms", type=int, default=60)
    ap.add_argument("--skip-server", action="store_true", help="only the in-process part")
    args = ap.parse_args()
    asyncio.run(main(args.alerts, args.runs, args.jitter_ms, args.skip_server))
