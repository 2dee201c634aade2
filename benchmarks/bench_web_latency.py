"""The phone page's latency: the model's decision → the first sample played in the browser.

A real server on loopback (scripted model, the bundled Piper voice), the real relay and
the page in Debian's headless Chromium (fake camera and microphone). The scripted model
says a short reply every ``--every`` seconds; the benchmark stamps each decision as the
model returns it and reads from the page when each utterance's first sample went into
the Web Audio graph (plus the context's own output latency). Also, beside the CLI
bridge's number from ``bench_playback.py`` (first ``AudioOut`` → first sample out of the
sink), the same for the page: first ``AudioOut`` at the relay → first sample played.
Everything runs on one machine, so the page's and Python's wall clocks are one clock.
No asserts; the numbers are printed.

    python benchmarks/bench_web_latency.py --replies 8

On the 2-core dev box (2026-12, shared with other work; 6 replies, 60 ms jitter buffer,
Web Audio output latency 40 ms included): decision → first sample played in the browser
p50 128 ms / p95 214 ms; first AudioOut at the relay → first sample played p50 64 ms /
p95 80 ms, beside the CLI bridge's 57 / 61 ms (bench_playback.py; its decision → first
AudioOut is bench_latency.py's first table).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proto"))

from mobile_bridge.pairing import ConnectFlags
from mobile_bridge.web import page as page_module
from mobile_bridge.web.relay import Relay, RelayOptions, serve
from server.config import Settings
from server.runtime.scripted import ScriptedRuntime, ScriptedSession, ScriptLine
from tests.harness import piper_tts, running_server
from tests.web.browser import chromium

REPLIES = ["Door on your left.", "Chair ahead.", "Stairs going down.", "A bench on your right."]


class Stamped(ScriptedRuntime):
    """Stamps (wall ms) each tick whose action is a reply, as the model returns it."""

    decisions: list[float]

    def open_session(self, instruction: str, *, language: str = "en") -> ScriptedSession:
        session = super().open_session(instruction, language=language)
        assert isinstance(session, ScriptedSession)
        run_turn = session._run_turn

        def stamped(turn: Any, on_clause: Any) -> Any:
            action = run_turn(turn, on_clause)
            if action.text:
                self.decisions.append(time.time() * 1000)
            return action

        session._run_turn = stamped  # type: ignore[method-assign]
        return session


def _pcts(name: str, xs: list[float], beside: str = "") -> None:
    xs = sorted(xs)
    if not xs:
        print(f"{name}: no samples")
        return
    p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
    print(f"{name}: p50 {statistics.median(xs):.0f} ms, p95 {p95:.0f} ms, n {len(xs)} {beside}")


async def main(replies: int, every_s: float) -> None:
    script = [
        ScriptLine(at=2 + i * every_s, output=f"</response> {REPLIES[i % len(REPLIES)]}")
        for i in range(replies)
    ]
    runtime = Stamped(script)
    runtime.decisions = []
    first_packet: dict[str, float] = {}
    feed = page_module.PageSink.feed

    def stamped_feed(self: page_module.PageSink, uid: str, packet: bytes) -> None:
        first_packet.setdefault(uid, time.time() * 1000)
        feed(self, uid, packet)

    page_module.PageSink.feed = stamped_feed  # type: ignore[method-assign]
    tts = piper_tts()
    settings = Settings().with_overrides("server", tick_hz=5.0, frame_wait_ms=20)
    with tempfile.TemporaryDirectory() as cfg:
        os.environ["XDG_CONFIG_HOME"] = cfg
        async with running_server(runtime, tts, settings) as srv:
            flags = ConnectFlags(server=srv.address, insecure=True)
            relay = Relay(RelayOptions(connect=flags))
            async with serve(relay, "127.0.0.1", 0) as url, chromium(None, None) as browser:
                ctx = await browser.new_context(permissions=["camera", "microphone"])
                page = await ctx.new_page()
                await page.goto(url)
                await page.wait_for_function("murmur.ws && murmur.ws.readyState === 1")
                await page.get_by_role("button", name="Start").click()
                deadline = time.monotonic() + 2 + replies * every_s + 20
                while time.monotonic() < deadline:
                    done = await page.evaluate("(murmur.firstPlayed || []).length")
                    if done >= replies:
                        break
                    await asyncio.sleep(0.2)
                played = await page.evaluate("murmur.firstPlayed || []")
                output_ms = await page.evaluate(
                    "1000 * ((murmur.ctx.outputLatency || 0) + (murmur.ctx.baseLatency || 0))"
                )
                await page.get_by_role("button", name="Stop", exact=True).click()
                await asyncio.sleep(1.0)
                await ctx.close()
            await relay.aclose()
    tts.close()
    first = [p["at"] + output_ms for p in played]
    decision = [f - d for d, f in zip(runtime.decisions, first, strict=False)]
    relay_to_page = [
        p["at"] + output_ms - first_packet[p["id"]] for p in played if p["id"] in first_packet
    ]
    print(f"{len(played)} of {replies} replies played; Web Audio output latency {output_ms:.0f} ms")
    _pcts("decision → first sample played in the browser", decision)
    _pcts(
        "first AudioOut at the relay → first sample played",
        relay_to_page,
        "(CLI bridge, bench_playback.py: p50 57 ms / p95 61 ms)",
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replies", type=int, default=8)
    ap.add_argument("--every", type=float, default=2.5, metavar="S")
    a = ap.parse_args()
    asyncio.run(main(a.replies, a.every))
