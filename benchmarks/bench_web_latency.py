"""The phone page's latency: the model's decision → the first sample played in the browser,
beside the CLI bridge's decision → first sample out of its player, in the same run.

A real server on loopback (scripted model, the bundled Piper voice) and two clients of
it, one after the other, each with the same script (a short reply every ``--every``
seconds, each reply's text distinct):

* **the page**: the real relay and the page in Debian's headless Chromium (fake camera
  and microphone). The page says when each utterance's first sample went into the Web
  Audio graph (``murmur.firstPlayed``), plus the context's own output latency;
* **the CLI bridge**: a ``BridgeSession`` over a ``BridgeLink`` into an ``AudioSink``
  whose ``PlaybackSink`` plays on a paced output that stamps every block it pulls
  (bench_playback.py's recording output), on the real clock.

Decisions are stamped by wrapping the public ``ModelSession.step`` and keyed by the
reply's text; the relay's ``RelayOptions.observers`` (and the bridge's own observers)
tie each text to its utterance id and its first ``AudioOut``. Plays are matched to
decisions on (utterance, text), never by order. Everything runs on one machine, so the
page's and Python's wall clocks are one clock. No asserts; the numbers are printed.

    python benchmarks/bench_web_latency.py --replies 8

On the 2-core dev box (2026-12, shared with other work; 6 replies, 60 ms jitter buffers,
Web Audio output latency included) see the table this prints; the last run is quoted
in the README's "The phone page".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proto"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_playback import RATE, StampedOutput  # the recording output, beside this file
from murmur.v1 import companion_pb2 as pb

from mobile_bridge.client import BridgeSession, SessionOptions
from mobile_bridge.clock import SystemClock
from mobile_bridge.connection import LinkOptions
from mobile_bridge.link import BridgeLink
from mobile_bridge.pairing import ConnectFlags
from mobile_bridge.sinks.audio import AudioSink
from mobile_bridge.sinks.base import EventObserver
from mobile_bridge.sinks.playback import PlaybackOptions, PlaybackSink
from mobile_bridge.sources.base import GlassesSource, JpegFrame, SourceCapabilities
from mobile_bridge.web.relay import Relay, RelayOptions, serve
from server.config import Settings
from server.runtime.base import ModelSession
from server.runtime.scripted import ScriptedRuntime, ScriptLine
from tests.harness import jpeg, piper_tts, running_server
from tests.web.browser import chromium

REPLIES = ["Door on your left", "Chair ahead", "Stairs going down", "A bench on your right"]
LEAD_S = 2.0  # the first reply's time into the session


def _key(text: str) -> str:
    return " ".join(text.split()).rstrip(".").lower()


class Stamped(ScriptedRuntime):
    """Each session's decisions: reply text → (wall ms, monotonic s) as ``step`` returned."""

    def __init__(self, script: list[ScriptLine]) -> None:
        super().__init__(script, name="scripted-stamped")
        self.decided: list[dict[str, tuple[float, float]]] = []  # one per session, in order

    def open_session(self, instruction: str, *, language: str = "en") -> ModelSession:
        session = super().open_session(instruction, language=language)
        decided: dict[str, tuple[float, float]] = {}
        self.decided.append(decided)
        step = session.step

        def stamped(tick: Any, on_clause: Any = None) -> Any:
            action = step(tick, on_clause)
            if action.text:
                decided.setdefault(_key(action.text), (time.time() * 1000, time.monotonic()))
            return action

        session.step = stamped  # type: ignore[method-assign]
        return session


class Utterances(EventObserver):
    """Each utterance's text and when its first ``AudioOut`` arrived (wall ms, monotonic s)."""

    def __init__(self) -> None:
        self.text: dict[str, str] = {}
        self.first_audio: dict[str, tuple[float, float]] = {}

    def received(self, event: pb.ServerEvent, at: float) -> None:
        which = event.WhichOneof("event")
        if which == "speech":
            self.text[event.speech.utterance_id] = _key(event.speech.text)
        elif which == "audio_out":
            stamp = (time.time() * 1000, time.monotonic())
            self.first_audio.setdefault(event.audio_out.utterance_id, stamp)


class Still(GlassesSource):
    """A camera that shows one scene twice a second for ``seconds``, then ends."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    @property
    def capabilities(self) -> SourceCapabilities:
        return SourceCapabilities(camera=True, speaker=True, max_fps=2.0)

    async def frames(self) -> AsyncIterator[JpegFrame]:  # type: ignore[override]
        end, frame = time.monotonic() + self.seconds, jpeg(160, 120)
        while time.monotonic() < end:
            yield JpegFrame(frame, int(time.time() * 1000))
            await asyncio.sleep(0.5)


def _pcts(xs: list[float]) -> str:
    if not xs:
        return "no samples".ljust(22)
    s = sorted(xs)
    p95 = s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]
    return f"p50 {statistics.median(s):4.0f} / p95 {p95:4.0f} ms (n {len(s)})"


async def page_run(address: str, seconds: float, replies: int) -> tuple[Utterances, list, float]:
    """The page's plays: (its utterances, firstPlayed entries, output latency ms)."""
    seen = Utterances()
    relay = Relay(
        RelayOptions(connect=ConnectFlags(server=address, insecure=True), observers=(seen,))
    )
    async with serve(relay, "127.0.0.1", 0) as url, chromium(None, None) as browser:
        ctx = await browser.new_context(permissions=["camera", "microphone"])
        page = await ctx.new_page()
        await page.goto(url)
        await page.wait_for_function("murmur.ws && murmur.ws.readyState === 1")
        await page.get_by_role("button", name="Start").click()
        deadline = time.monotonic() + seconds + 20
        while time.monotonic() < deadline:
            if await page.evaluate("murmur.firstPlayed.length") >= replies:
                break
            await asyncio.sleep(0.2)
        played = await page.evaluate("murmur.firstPlayed")
        output_ms = await page.evaluate(
            "1000 * ((murmur.ctx.outputLatency || 0) + (murmur.ctx.baseLatency || 0))"
        )
        await page.get_by_role("button", name="Stop", exact=True).click()
        await asyncio.sleep(1.0)
        await ctx.close()
    await relay.aclose()
    return seen, played, output_ms


async def cli_run(address: str, seconds: float) -> tuple[Utterances, PlaybackSink, StampedOutput]:
    seen, out, clock = Utterances(), StampedOutput(), SystemClock()
    player = PlaybackSink(out, PlaybackOptions(rate_hz=RATE, jitter_ms=60))
    session = BridgeSession(
        Still(seconds),
        AudioSink(RATE, player=player),
        lambda start: BridgeLink(LinkOptions(target=address), start, clock=clock),
        SessionOptions(linger_s=3.0),
        observers=(seen,),
        say=lambda line: None,
        clock=clock,
    )
    await session.run()
    return seen, player, out


async def main(replies: int, every_s: float) -> None:
    script = [
        ScriptLine(at=LEAD_S + i * every_s, output=f"</response> {REPLIES[i % 4]}, {i + 1}.")
        for i in range(replies)
    ]
    runtime = Stamped(script)
    seconds = LEAD_S + replies * every_s + 2
    tts = piper_tts()
    settings = Settings().with_overrides("server", tick_hz=5.0, frame_wait_ms=20)
    with tempfile.TemporaryDirectory() as cfg:
        os.environ["XDG_CONFIG_HOME"] = cfg
        async with running_server(runtime, tts, settings) as srv:
            page_seen, played, output_ms = await page_run(srv.address, seconds, replies)
            cli_seen, player, out = await cli_run(srv.address, seconds)
    tts.close()
    page_decided, cli_decided = runtime.decided[0], runtime.decided[-1]

    page_decision, page_audio = [], []
    for p in played:  # matched on (utterance, text)
        text = page_seen.text.get(p["id"])
        first = p["at"] + output_ms
        if text in page_decided:
            page_decision.append(first - page_decided[text][0])
        if p["id"] in page_seen.first_audio:
            page_audio.append(first - page_seen.first_audio[p["id"]][0])
    cli_decision, cli_audio = [], []
    for uid, text in cli_seen.text.items():
        span = player.spans.get(uid)
        if span is None:
            continue
        first = out.time_of(span[0])
        if text in cli_decided:
            cli_decision.append((first - cli_decided[text][1]) * 1000)
        if uid in cli_seen.first_audio:
            cli_audio.append((first - cli_seen.first_audio[uid][1]) * 1000)

    print(
        f"{replies} replies each; page: {len(played)} played, Web Audio output latency "
        f"{output_ms:.0f} ms included; CLI bridge: {len(player.spans)} played, paced output"
    )
    print(f"{'':36s}  {'the page (Chromium)':30s}  CLI bridge (PlaybackSink)")
    print(
        f"{'decision → first sample played':36s}  {_pcts(page_decision):30s}  {_pcts(cli_decision)}"
    )
    print(
        f"{'first AudioOut → first sample played':36s}  {_pcts(page_audio):30s}  {_pcts(cli_audio)}"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replies", type=int, default=8)
    ap.add_argument("--every", type=float, default=2.5, metavar="S")
    a = ap.parse_args()
    asyncio.run(main(a.replies, a.every))
