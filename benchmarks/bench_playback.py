"""The bridge's playback sink against a scripted server, in real time: how soon an
utterance's first sample leaves the sink after its first ``AudioOut`` packet arrived,
how soon output stops after a ``StopSpeaking``, and whether each ``PlaybackReport``
matches what was written to the output.

The scripted server sends real Opus packets every 20 ms (as the server paces them)
straight into the session's event router; the output is a paced one on the real
clock that stamps every block it pulls, so "leaves the sink" is the moment a block is
pulled plus the sample's place in it. A sound card adds its own buffer (about one
block with sounddevice's ``latency="low"``) on top. No asserts: the targets (first
sample ≤ 150 ms, stop ≤ 40 ms) are printed beside the numbers.

    python benchmarks/bench_playback.py --runs 10 --jitter-ms 60

On the 2-core dev box (load ~5, 20 utterances, 60 ms jitter buffer): first AudioOut →
first sample out p50 57 ms / p95 61 ms; StopSpeaking → last sample out p50 17 ms /
p95 18 ms; |played_ms − written| p50 0.6 ms / p95 8 ms; no underruns.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proto"))

import numpy as np
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.client import ServerEventRouter
from mobile_bridge.clock import SystemClock
from mobile_bridge.media import OpusPacketizer
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


async def main(runs: int, jitter_ms: int) -> None:
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
    print(f"{runs * 2} utterances, jitter buffer {jitter_ms} ms, 20 ms blocks, paced output")
    _pcts("first AudioOut → first sample out", first, "(target ≤ 150)")
    _pcts("StopSpeaking → last sample out", stops, "(target ≤ 40)")
    _pcts("|PlaybackReport.played_ms − written|", errors, "(one block = 20)")
    print(f"underrun blocks {sink.stats.underrun_blocks}, bad packets {sink.stats.bad_packets}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--jitter-ms", type=int, default=60)
    args = ap.parse_args()
    asyncio.run(main(args.runs, args.jitter_ms))
